# Reads the `bench ...` lines of one `make bench` run and prints gkd's speed
# as a ratio to the PyTorch peer measured in the same run, beside the target.
#   bench model tiny fwdbwd tokens_per_s=...      vs  bench peer_torch tiny fwdbwd tokens_per_s=...
#   bench decode tiny tokens_per_s=...            vs  bench peer_torch tiny decode tokens_per_s=...
#   bench gkd tiny tokens_per_s=...               vs  bench peer_torch_gkd tiny tokens_per_s=...
#   bench tokenize gpt2 whole mb_per_s=...         vs  the fastest bench tokenize-peer NAME whole mb_per_s=...
#     (the tokenizer rows are MB of text per second, against JavaScript; gkd
#     encodes the corpus's bytes, the peers its text with U+FFFD for the
#     invalid bytes of 10 of its 9025 lines, 16 ids fewer in all)
# Lines tagged round=N (bench/rounds.sh) pair each gkd run with the peer
# run of the same round: the ratio printed is the median of the rounds'
# ratios, and the tokens/s columns are each side's median. Untagged lines
# are single runs.
# "at sgemm" is the ratio gkd would reach if all of its useful FLOPs ran at
# the single-product OpenBLAS sgemm rate measured in the same run (bench
# sgemm gflops=..., the median over rounds): the ratio x sgemm GFLOP/s /
# achieved GFLOP/s. "at peak" is the same at the CPU's vector multiply-add
# rate (bench peak gflops=...), the hard ceiling for fp32 arithmetic:
# OpenBLAS may use narrower vectors than the CPU has, so the sgemm rate is
# not a limit.
function field(line, name,   i, n, f) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) if (index(f[i], name "=") == 1) { sub(/^[^=]*=/, "", f[i]); return f[i] + 0 }
    return 0
}
# Median of v[1..n] (sorts v).
function median(v, n,   i, j, x) {
    for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
# One measurement: side "ours" or "peer", key k; r = round (0: untagged).
function note(side, k, line,   r) {
    r = field(line, "round")
    if (r > last[k]) last[k] = r
    if (side == "ours") { ours_r[k, r] = field(line, "tokens_per_s"); gf_r[k, r] = field(line, "gflops") }
    else peer_r[k, r] = field(line, "tokens_per_s")
}
# Peak memory of one step (bench_gkd's v50k-* cases, each alone in its
# process, and the peer's v50k-dense), printed as measured.
$1 == "bench" && ($2 == "gkd" || $2 == "peer_torch_gkd") && $3 ~ /^v50k-/ { peak[$2 " " $3] = field($0, "peak_rss_mib") }
function ceiling(name, line) { ceil_n[name]++; ceil_v[name, ceil_n[name]] = field(line, "gflops") }
$1 == "bench" && $2 == "sgemm" { ceiling("sgemm", $0) }
$1 == "bench" && $2 == "peak" { ceiling("peak", $0) }
$1 == "bench" && $2 == "model" && $4 ~ /^fwd/ { note("ours", "fwd " $3 " " $4, $0) }
$1 == "bench" && $2 == "peer_torch" && $4 ~ /^fwd/ { note("peer", "fwd " $3 " " $4, $0) }
$1 == "bench" && $2 == "decode" { note("ours", "decode " $3, $0) }
$1 == "bench" && $2 == "peer_torch" && $4 == "decode" { note("peer", "decode " $3, $0) }
$1 == "bench" && $2 == "gkd" { note("ours", "gkd " $3, $0) }
$1 == "bench" && $2 == "peer_torch_gkd" && $3 !~ /^threads=/ { note("peer", "gkd " $3, $0) }
# The tokenizer in MB/s (kept in the tokens/s slots): gkd against the
# fastest of the JavaScript encoders of the same round and mode.
$1 == "bench" && $2 == "tokenize" { k = "tokenize " $4; r = field($0, "round"); if (r > last[k]) last[k] = r
    ours_r[k, r] = field($0, "mb_per_s") }
$1 == "bench" && $2 == "tokenize-peer" { k = "tokenize " $4; r = field($0, "round"); if (r > last[k]) last[k] = r
    mb = field($0, "mb_per_s"); if (!((k, r) in peer_r) || mb > peer_r[k, r]) peer_r[k, r] = mb }
END {
    for (name in ceil_n) {
        for (i = 1; i <= ceil_n[name]; i++) v[i] = ceil_v[name, i]
        ceil[name] = median(v, ceil_n[name])
    }
    target["fwd tiny fwdbwd"] = 2; target["fwd small fwdbwd"] = 1
    target["decode tiny"] = 5; target["decode small"] = 5
    target["gkd tiny"] = 5; target["gkd small"] = 5
    # stories15m (Llama) has no target: the targets above are the issue's per-shape goals.
    nk = split("fwd tiny fwd|fwd tiny fwdbwd|fwd small fwd|fwd small fwdbwd|fwd stories15m fwd|fwd stories15m fwdbwd|" \
               "decode tiny|decode small|decode stories15m|gkd tiny|gkd small|gkd stories15m|" \
               "tokenize whole|tokenize lines", keys, "|")
    print "ratio to PyTorch (same run, tokens/s; tokenize: MB/s against the fastest JavaScript encoder):"
    for (i = 1; i <= nk; i++) {
        k = keys[i]
        n = 0
        for (r = 0; r <= last[k]; r++) {
            if (!((k, r) in ours_r) || !((k, r) in peer_r) || peer_r[k, r] <= 0) continue
            n++; a[n] = ours_r[k, r]; b[n] = peer_r[k, r]; g[n] = gf_r[k, r]; q[n] = ours_r[k, r] / peer_r[k, r]
        }
        if (n == 0) continue
        ours = median(a, n); peer = median(b, n); gf = median(g, n); ratio = median(q, n)
        c = (ceil["sgemm"] > 0 && gf > 0) ? sprintf("  at sgemm %5.2fx", ratio * ceil["sgemm"] / gf) : ""
        if (ceil["peak"] > 0 && gf > 0) c = c sprintf("  at peak %5.2fx", ratio * ceil["peak"] / gf)
        t = (k in target) ? sprintf("  target >= %gx: %s", target[k], ratio >= target[k] ? "met" : "NOT met") : ""
        s = n > 1 ? sprintf("  (median of %d paired rounds: %.2fx to %.2fx)", n, q[1], q[n]) : ""
        printf "  %-24s gkd %9.0f  torch %9.0f  %5.2fx%s%s%s\n", k, ours, peer, ratio, c, t, s
    }
    np = split("gkd v50k-dense|gkd v50k-topk64|peer_torch_gkd v50k-dense", pk, "|")
    for (i = 1; i <= np; i++) {
        if (!(pk[i] in peak)) continue
        if (!said_peak++) print "peak memory of one GKD step at V = 50257, B = 16, T = 256 (MiB):"
        printf "  %-32s %6.0f\n", pk[i], peak[pk[i]]
    }
}
