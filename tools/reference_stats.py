#!/usr/bin/python3
"""Write tests/fixtures/stats_ref.tsv: SciPy reference values for the
statistics of src/util/stats.c (paired comparisons in gkd table).

Usage: /usr/bin/python3 tools/reference_stats.py

Needs Debian's python3-scipy only; building and testing gkd never needs
Python, the output file is committed.

Format: one record per line, tab-separated, numbers as %.17g:
  betainc  A B X VALUE            scipy.special.betainc
  tcdf     T DF VALUE             scipy.stats.t.cdf
  tppf     P DF VALUE             scipy.stats.t.ppf
  nctcdf   T DF NC VALUE          scipy.stats.nct.cdf
  paired   CASE N D1 .. DN        the differences of a paired case
  ttest    CASE T P LO HI         scipy.stats.ttest_rel (two-sided) of x = d + y
                                  against y, and mean -+ t.ppf(0.975, n-1) sem
  perm     CASE P                 scipy.stats.permutation_test (samples, exact,
                                  two-sided) of the mean difference (n <= 12)
  holm     CASE M P1 .. PM ADJ1 .. ADJM   Holm's adjustment, from its definition
  power    DIFF SD N ALPHA VALUE  1 - nct.cdf(tc) + nct.cdf(-tc), tc = t.ppf(1 - alpha/2)
  mde      SD N ALPHA POWER VALUE brentq on the power in the noncentrality
  nneeded  DIFF SD ALPHA POWER MAXN VALUE   the fewest n >= 2 reaching POWER, -1 past MAXN
"""
import math
import os

import numpy as np
from scipy import optimize, special, stats

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "stats_ref.tsv")


def g(x):
    return "%.17g" % x


def power(diff, sd, n, alpha):
    df = n - 1
    tc = stats.t.ppf(1 - alpha / 2, df)
    nc = diff * math.sqrt(n) / sd
    return 1 - stats.nct.cdf(tc, df, nc) + stats.nct.cdf(-tc, df, nc)


def mde(sd, n, alpha, target):
    df = n - 1
    tc = stats.t.ppf(1 - alpha / 2, df)
    f = lambda nc: 1 - stats.nct.cdf(tc, df, nc) + stats.nct.cdf(-tc, df, nc) - target
    nc = optimize.brentq(f, 0.0, 100.0, xtol=1e-14, rtol=1e-14)
    return nc * sd / math.sqrt(n)


def n_needed(diff, sd, alpha, target, max_n):
    for n in range(2, max_n + 1):
        if power(abs(diff), sd, n, alpha) >= target:
            return n
    return -1


def holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def main():
    rng = np.random.default_rng(20261204)
    lines = []
    for a, b, x in [(0.5, 0.5, 0.3), (2.0, 3.0, 0.4), (0.5, 4.5, 0.999), (10.0, 0.5, 0.2),
                    (1.5, 1.5, 0.5), (30.0, 0.5, 0.95), (0.5, 15.0, 1e-4), (100.0, 100.0, 0.51),
                    (5.5, 2.0, 0.9), (3.0, 0.5, 0.01)]:
        lines.append(["betainc", g(a), g(b), g(x), g(special.betainc(a, b, x))])
    for t, df in [(0.0, 1), (1.0, 1), (-2.5, 2), (2.776, 4), (10.0, 3), (-0.3, 9), (4.0, 29),
                  (-7.5, 11), (1.96, 1000), (0.01, 5)]:
        lines.append(["tcdf", g(t), g(df), g(stats.t.cdf(t, df))])
    for p, df in [(0.975, 1), (0.975, 2), (0.975, 5), (0.975, 9), (0.975, 29), (0.975, 100),
                  (0.6, 3), (0.05, 7), (0.999, 4), (0.5, 8)]:
        lines.append(["tppf", g(p), g(df), g(stats.t.ppf(p, df))])
    for t, df, nc in [(2.0, 4, 1.0), (2.262, 9, 3.0), (-1.0, 5, 0.5), (0.0, 3, 2.0), (3.0, 2, -1.0),
                      (2.045, 29, 2.9), (-2.045, 29, 2.9), (1.5, 11, 0.0), (5.0, 7, 6.0), (2.571, 5, 4.2)]:
        lines.append(["nctcdf", g(t), g(df), g(nc), g(stats.nct.cdf(t, df, nc))])
    case = 0
    for n in [2, 3, 4, 5, 6, 8, 10, 12, 13, 20]:
        for shift in [0.0, 0.4, 1.5]:
            d = rng.normal(shift, 1.0, n)
            y = rng.normal(0.5, 0.3, n)
            x = d + y
            d = x - y  # the differences gkd sees (rounded as it would compute them)
            lines.append(["paired", str(case), str(n)] + [g(v) for v in d])
            res = stats.ttest_rel(x, y)
            sem = np.std(d, ddof=1) / math.sqrt(n)
            q = stats.t.ppf(0.975, n - 1)
            lines.append(["ttest", str(case), g(res.statistic), g(res.pvalue), g(d.mean() - q * sem),
                          g(d.mean() + q * sem)])
            if n <= 12:
                pr = stats.permutation_test((x, y), lambda a, b: np.mean(a - b), vectorized=False,
                                            permutation_type="samples", n_resamples=np.inf,
                                            alternative="two-sided")
                lines.append(["perm", str(case), g(pr.pvalue)])
            case += 1
    for hc, p in enumerate([[0.01, 0.04, 0.03, 0.2], [0.001, 0.5, 0.5, 0.02, 0.049, 0.9],
                            [0.3], [0.04, 0.04, 0.01]]):
        lines.append(["holm", str(hc), str(len(p))] + [g(v) for v in p] + [g(v) for v in holm(p)])
    for diff, sd, n, alpha in [(0.1, 0.2, 10, 0.05), (0.3, 0.2, 3, 0.05), (0.05, 0.4, 30, 0.05),
                               (1.0, 1.0, 6, 0.01), (-0.2, 0.3, 12, 0.05)]:
        lines.append(["power", g(diff), g(sd), g(n), g(alpha), g(power(diff, sd, n, alpha))])
    for sd, n, alpha, target in [(0.2, 10, 0.05, 0.8), (0.3, 3, 0.05, 0.8), (0.05, 30, 0.05, 0.8),
                                 (1.0, 6, 0.01, 0.9), (0.4, 2, 0.05, 0.8)]:
        lines.append(["mde", g(sd), g(n), g(alpha), g(target), g(mde(sd, n, alpha, target))])
    for diff, sd, alpha, target, max_n in [(0.1, 0.2, 0.05, 0.8, 200), (0.3, 0.2, 0.05, 0.8, 200),
                                           (0.02, 0.4, 0.05, 0.8, 100), (-0.5, 0.3, 0.05, 0.9, 50)]:
        lines.append(["nneeded", g(diff), g(sd), g(alpha), g(target), str(max_n),
                      str(n_needed(diff, sd, alpha, target, max_n))])
    with open(OUT, "w") as f:
        for fields in lines:
            f.write("\t".join(fields) + "\n")
    print("wrote", os.path.normpath(OUT), len(lines), "records")


if __name__ == "__main__":
    main()
