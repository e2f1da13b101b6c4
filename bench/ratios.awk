# Reads the `bench ...` lines of one `make bench` run and prints gkd's speed
# as a ratio to the PyTorch peer measured in the same run, beside the target.
#   bench model tiny fwdbwd tokens_per_s=...      vs  bench peer_torch tiny fwdbwd tokens_per_s=...
#   bench decode tiny tokens_per_s=...            vs  bench peer_torch tiny decode tokens_per_s=...
#   bench gkd tiny tokens_per_s=...               vs  bench peer_torch_gkd tiny tokens_per_s=...
function tps(line,   i, n, f) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) if (f[i] ~ /^tokens_per_s=/) { sub(/^tokens_per_s=/, "", f[i]); return f[i] + 0 }
    return 0
}
$1 == "bench" && $2 == "model" && $4 ~ /^fwd/ { ours["fwd " $3 " " $4] = tps($0) }
$1 == "bench" && $2 == "peer_torch" && $4 ~ /^(fwd|fwdbwd|decode)$/ { peer[($4 == "decode" ? "decode " $3 : "fwd " $3 " " $4)] = tps($0) }
$1 == "bench" && $2 == "decode" { ours["decode " $3] = tps($0) }
$1 == "bench" && $2 == "gkd" { ours["gkd " $3] = tps($0) }
$1 == "bench" && $2 == "peer_torch_gkd" { peer["gkd " $3] = tps($0) }
END {
    target["fwd tiny fwdbwd"] = 2; target["fwd small fwdbwd"] = 1
    target["decode tiny"] = 5; target["decode small"] = 5
    target["gkd tiny"] = 5; target["gkd small"] = 5
    n = split("fwd tiny fwd|fwd tiny fwdbwd|fwd small fwd|fwd small fwdbwd|decode tiny|decode small|gkd tiny|gkd small", keys, "|")
    print "ratio to PyTorch (same run, tokens/s):"
    for (i = 1; i <= n; i++) {
        k = keys[i]
        if (!(k in ours) || !(k in peer) || peer[k] <= 0) continue
        r = ours[k] / peer[k]
        t = (k in target) ? sprintf("  target >= %gx: %s", target[k], r >= target[k] ? "met" : "NOT met") : ""
        printf "  %-18s gkd %9.0f  torch %9.0f  %5.2fx%s\n", k, ours[k], peer[k], r, t
    }
}
