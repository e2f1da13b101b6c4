#!/usr/bin/python3
"""Sparse (top-k) teacher fixtures for tests/test_sparse_divergence.c: the
top-k rows built from dense teacher logits, and per-row divergence values
and autograd gradients w.r.t. the student logits in both tail modes, in
float64.

Usage: /usr/bin/python3 tools/ref_sparse_divergence.py [OUTDIR]  (default tests/fixtures)
(write(out_dir) is the interface of tools/reference.py's parts.)

Definitions (docs/divergences.md, "Sparse teacher distributions"). A row
keeps the set S of the k largest teacher logits (ties: lower id first), in
ascending id order, logp_i = log softmax(z_T / tau)_i for i in S (float32)
and log_tail = log sum_{j not in S} softmax(z_T / tau)_j (float32; -inf
when k = V). With x = z_S / tau and D one of the dense divergences of
tools/ref_divergence.py on distributions given by their log-probabilities:
  renorm  D(softmax(logp), softmax(x[S]))                 k outcomes
  tail    D(softmax([logp, log_tail]), [log q[S], log sum_{j not in S} q_j])
          with log q = log_softmax(x); k + 1 outcomes (k outcomes at k = V)
The stored float32 row is renormalised (softmax of its logs). Computed from
the dense student logits with a mask (gather for S, a -inf fill of S for the
rest); gradients by autograd, not from src/model/sparse_teacher.c.

File tests/fixtures/sparse_divergence.bin, all little-endian:
  magic  b"GKDSPD01"
  int32  ncases
  per case:
    int32 N, int32 V, int32 k, float32 tau, char[16] label (NUL padded)
    float32 student_logits[N*V], float32 teacher_logits[N*V]
    int32 ids[N*k], float32 logp[N*k], float32 log_tail[N]   the rows
    int32 nentries
    per entry:
      int32 mode (0 renorm, 1 tail), int32 kind (gkd_divergence_kind), float64 param
      float64 values[N]
      float64 grad[N*V]      d(sum_n values[n]) / d student_logits
"""
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_divergence import DIVS, divergence  # noqa: E402  (the dense definitions)


def top_k_rows(zt32, k, tau):
    """ids (ascending), float32 logp and float32 log_tail of each row."""
    logp = torch.log_softmax(zt32.to(torch.float64) / tau, -1)
    # Stable sort of -z: equal logits keep id order, so the lower id wins.
    order = torch.sort(-zt32.to(torch.float64), dim=-1, stable=True).indices
    ids = order[:, :k].sort(-1).values
    lp = logp.gather(-1, ids)
    n, v = zt32.shape
    if k == v:
        lt = torch.full((n,), -np.inf, dtype=torch.float64)
    else:
        mask = torch.zeros(n, v, dtype=torch.bool).scatter(-1, ids, True)
        lt = torch.logsumexp(logp.masked_fill(mask, -np.inf), -1)
    return ids, lp.to(torch.float32), lt.to(torch.float32)


def sparse_divergence(kind, param, mode, zs, ids, lp32, lt32, tau):
    """Per-row values; zs (N, V) float64 with requires_grad."""
    n, v = zs.shape
    k = ids.shape[1]
    x = zs / tau
    lp = lp32.to(torch.float64)
    if mode == 0:
        # divergence() takes logits and applies log_softmax at temperature 1:
        # that is the renormalisation of both sides over S.
        return divergence(kind, param, x.gather(-1, ids), lp, 1.0)
    logq = torch.log_softmax(x, -1)
    lq_b = logq.gather(-1, ids)
    lp_b = lp
    if k < v:
        mask = torch.zeros(n, v, dtype=torch.bool).scatter(-1, ids, True)
        lq_rest = torch.logsumexp(logq.masked_fill(mask, -np.inf), -1, keepdim=True)
        lq_b = torch.cat([lq_b, lq_rest], -1)
        lp_b = torch.cat([lp, lt32.to(torch.float64)[:, None]], -1)
    # lq_b is normalised already (log_softmax leaves it as it is); lp_b is
    # the stored row, renormalised by it.
    return divergence(kind, param, lq_b, lp_b, 1.0)


def datasets():
    g = torch.Generator().manual_seed(20240615)

    def normal(n, v, s):
        return torch.randn(n, v, generator=g, dtype=torch.float64) * s

    out = []
    out.append(("random", normal(4, 16, 2.0), normal(4, 16, 2.0), 1.0))
    out.append(("random_t2", normal(4, 20, 3.0), normal(4, 20, 3.0), 2.0))
    zs, zt = normal(4, 16, 1.0), normal(4, 16, 1.0)
    for n in range(4):
        zt[n, (5 * n) % 16] += 12.0
        zs[n, (3 * n + 1) % 16] += 6.0
    out.append(("peaked", zs, zt, 1.0))
    out.append(("near_uniform", normal(4, 16, 0.01), normal(4, 16, 0.01), 1.0))
    # Logits on a coarse grid: many ties, broken by the lower id.
    out.append(("ties_t07", normal(4, 12, 1.0), (normal(4, 12, 1.0) * 2).round() / 2, 0.7))
    sign = lambda t: torch.where(t > 0, torch.full_like(t, 80.0), torch.full_like(t, -80.0))
    out.append(("extreme", sign(normal(3, 12, 1.0)),
                (torch.rand(3, 12, generator=g, dtype=torch.float64) * 160 - 80), 1.0))
    return out


def write(out_dir):
    blob = bytearray(b"GKDSPD01")
    cases = []
    for label, zs, zt, tau in datasets():
        v = zs.shape[1]
        for k in sorted({1, 5, v // 2, v}):
            cases.append((f"{label}_k{k}", zs, zt, tau, k))
    blob += struct.pack("<i", len(cases))
    for label, zs, zt, tau, k in cases:
        assert len(label) <= 16, label
        zs32, zt32 = zs.to(torch.float32), zt.to(torch.float32)
        n, v = zs32.shape
        tau32 = float(np.float32(tau))
        ids, lp32, lt32 = top_k_rows(zt32, k, tau32)
        blob += struct.pack("<iiif16s", n, v, k, tau, label.encode())
        blob += zs32.numpy().astype("<f4").tobytes() + zt32.numpy().astype("<f4").tobytes()
        blob += ids.numpy().astype("<i4").tobytes()
        blob += lp32.numpy().astype("<f4").tobytes() + lt32.numpy().astype("<f4").tobytes()
        blob += struct.pack("<i", 2 * len(DIVS))
        for mode in (0, 1):
            for kind, param in DIVS:
                s = zs32.to(torch.float64).requires_grad_(True)
                vals = sparse_divergence(kind, param, mode, s, ids, lp32, lt32, tau32)
                vals.sum().backward()
                assert torch.isfinite(vals).all() and torch.isfinite(s.grad).all(), (label, mode, kind)
                blob += struct.pack("<iid", mode, kind, param)
                blob += vals.detach().numpy().astype("<f8").tobytes()
                blob += s.grad.numpy().astype("<f8").tobytes()
    path = os.path.join(out_dir, "sparse_divergence.bin")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    print(f"wrote {path} ({len(blob)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    write(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures"))
