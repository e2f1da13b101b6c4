# Reads the `bench ...` lines of one `make bench` run and prints gkd's speed
# as a ratio to the PyTorch peer measured in the same run, beside the target.
#   bench model tiny fwdbwd tokens_per_s=...      vs  bench peer_torch tiny fwdbwd tokens_per_s=...
#   bench decode tiny tokens_per_s=...            vs  bench peer_torch tiny decode tokens_per_s=...
#   bench gkd tiny tokens_per_s=...               vs  bench peer_torch_gkd tiny tokens_per_s=...
# "at sgemm" is the ratio gkd would reach if all of its useful FLOPs ran at
# the single-product OpenBLAS sgemm rate measured in the same run (bench
# sgemm gflops=...): tokens/s x sgemm GFLOP/s / achieved GFLOP/s, over the
# peer's. "at peak" is the same at the CPU's vector multiply-add rate (bench
# peak gflops=...), the hard ceiling for fp32 arithmetic: OpenBLAS may use
# narrower vectors than the CPU has, so the sgemm rate is not a limit.
# Decoding lines tagged round=N (bench/decode_rounds.sh) pair each gkd run
# with the peer run of the same round; the ratio printed is the median of
# the rounds' ratios, and the tokens/s columns are each side's median.
function field(line, name,   i, n, f) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) if (index(f[i], name "=") == 1) { sub(/^[^=]*=/, "", f[i]); return f[i] + 0 }
    return 0
}
function ours_line(k, line) { ours[k] = field(line, "tokens_per_s"); gf[k] = field(line, "gflops") }
# Median of v[1..n] (sorts v).
function median(v, n,   i, j, x) {
    for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
$1 == "bench" && $2 == "sgemm" { sgemm = field($0, "gflops") }
$1 == "bench" && $2 == "peak" { peak = field($0, "gflops") }
$1 == "bench" && $2 == "model" && $4 ~ /^fwd/ { ours_line("fwd " $3 " " $4, $0) }
$1 == "bench" && $2 == "peer_torch" && $4 ~ /^(fwd|fwdbwd|decode)$/ && !field($0, "round") { peer[($4 == "decode" ? "decode " $3 : "fwd " $3 " " $4)] = field($0, "tokens_per_s") }
$1 == "bench" && $2 == "decode" && !field($0, "round") { ours_line("decode " $3, $0) }
$1 == "bench" && $2 == "decode" && field($0, "round") { k = "decode " $3; r = field($0, "round"); ours_r[k, r] = field($0, "tokens_per_s"); gf_r[k, r] = field($0, "gflops"); if (r > last[k]) last[k] = r }
$1 == "bench" && $2 == "peer_torch" && $4 == "decode" && field($0, "round") { peer_r["decode " $3, field($0, "round")] = field($0, "tokens_per_s") }
$1 == "bench" && $2 == "gkd" { ours_line("gkd " $3, $0) }
$1 == "bench" && $2 == "peer_torch_gkd" { peer["gkd " $3] = field($0, "tokens_per_s") }
END {
    # Paired rounds: each side's median, and the median of the rounds' ratios.
    for (k in last) {
        n = 0
        for (r = 1; r <= last[k]; r++) {
            if (!((k, r) in ours_r) || !((k, r) in peer_r) || peer_r[k, r] <= 0) continue
            n++; a[n] = ours_r[k, r]; b[n] = peer_r[k, r]; g[n] = gf_r[k, r]; q[n] = ours_r[k, r] / peer_r[k, r]
        }
        if (n == 0) continue
        ours[k] = median(a, n); peer[k] = median(b, n); gf[k] = median(g, n)
        paired[k] = median(q, n); spread[k] = sprintf("  (median of %d paired rounds: %.2fx to %.2fx)", n, q[1], q[n])
    }
    target["fwd tiny fwdbwd"] = 2; target["fwd small fwdbwd"] = 1
    target["decode tiny"] = 5; target["decode small"] = 5
    target["gkd tiny"] = 5; target["gkd small"] = 5
    n = split("fwd tiny fwd|fwd tiny fwdbwd|fwd small fwd|fwd small fwdbwd|decode tiny|decode small|gkd tiny|gkd small", keys, "|")
    print "ratio to PyTorch (same run, tokens/s):"
    for (i = 1; i <= n; i++) {
        k = keys[i]
        if (!(k in ours) || !(k in peer) || peer[k] <= 0) continue
        r = (k in paired) ? paired[k] : ours[k] / peer[k]
        c = (sgemm > 0 && gf[k] > 0) ? sprintf("  at sgemm %5.2fx", r * sgemm / gf[k]) : ""
        if (peak > 0 && gf[k] > 0) c = c sprintf("  at peak %5.2fx", r * peak / gf[k])
        t = (k in target) ? sprintf("  target >= %gx: %s", target[k], r >= target[k] ? "met" : "NOT met") : ""
        printf "  %-18s gkd %9.0f  torch %9.0f  %5.2fx%s%s%s\n", k, ours[k], peer[k], r, c, t, spread[k]
    }
}
