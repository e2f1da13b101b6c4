#!/usr/bin/python3
"""PyTorch peer of bench/bench_gkd.c: one full GKD step on 2 threads.

Student rollouts for B=16 prompts (per-layer K/V cache, temperature 1,
multinomial, exactly G new tokens), teacher forward over the sequences
(no grad), student forward and backward with the generalized JSD(0.5) on
the logits of the generated positions, grad clipping at 1 and AdamW.
Prints, like the C benchmark,
  bench peer_torch_gkd <shape> tokens_per_s=... step_ms=... sample=..% teacher=..% student_fwdbwd=..% update=..%
tokens_per_s counts generated tokens per second of whole steps (median),
best_tokens_per_s the fastest step, gflops the useful FLOP rate,
peak_rss_mib the process's peak resident memory so far (getrusage).
Run with /usr/bin/python3 (torch 1.13):
  peer_torch_gkd.py [--batch B] [--steps N] [SHAPE...]
runs the shapes named (default all), with their batch and steps unless given.
"""
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the same architectures as the C models
from peer_torch import STORIES15M, gpt2, layer_weights, make_model, tune_allocator  # noqa: E402

SHAPES = [
    # name, teacher config, student config, B, P, G, steps
    ("tiny", gpt2(64, 64, 4, 128, 4), gpt2(64, 64, 2, 64, 2), 16, 16, 48, 10),
    ("small", gpt2(256, 128, 6, 256, 8), gpt2(256, 128, 4, 128, 4), 16, 32, 96, 4),
    ("stories15m", STORIES15M, STORIES15M, 4, 32, 224, 3),
    # peak memory of one step at GPT-2's vocabulary (bench_gkd.c's v50k-dense);
    # run alone (peak_rss_mib is the process's peak), not by default
    ("v50k-dense", dict(STORIES15M, V=50257), dict(STORIES15M, V=50257), 16, 32, 224, 1),
]
ALONE = {"v50k-dense"}


def rollout(model, prompt, G):
    """Sample G tokens after prompt (B, P) with a K/V cache."""
    L = len(model.blocks)
    with torch.no_grad():
        caches = [[None, None] for _ in range(L)]
        logits = model(prompt, 0, caches, last=True)[:, -1]
        out = [prompt]
        P = prompt.shape[1]
        for g in range(G):
            nxt = torch.multinomial(logits.softmax(-1), 1)
            out.append(nxt)
            if g == G - 1:
                break
            logits = model(nxt, P + g, caches)[:, -1]
    return torch.cat(out, dim=1)


def jsd(zs, zt, beta=0.5):
    """Generalized JSD(beta) per row: beta KL(p||m) + (1-beta) KL(q||m)."""
    lq = zs.log_softmax(-1)
    lp = zt.log_softmax(-1)
    lm = torch.logsumexp(torch.stack([lp + math.log(beta), lq + math.log(1 - beta)]), dim=0)
    kl_p = (lp.exp() * (lp - lm)).sum(-1)
    kl_q = (lq.exp() * (lq - lm)).sum(-1)
    return beta * kl_p + (1 - beta) * kl_q


def forward_flops(cfg, B, T):
    """As bench/bench_gkd.c: matmuls and causal attention of a (B, T) forward."""
    L, C, V = cfg["L"], cfg["C"], cfg["V"]
    return 2.0 * B * T * (L * layer_weights(cfg) + C * V) + 2.0 * L * B * T * T * C


def parse_args(argv):
    """[--batch B] [--steps N] [SHAPE...] -> (batch or None, steps or None, names)."""
    opts, names, i = {"--batch": None, "--steps": None}, [], 0
    known = [s[0] for s in SHAPES]
    while i < len(argv):
        if argv[i] in opts and i + 1 < len(argv) and argv[i + 1].isdigit() and int(argv[i + 1]) > 0:
            opts[argv[i]] = int(argv[i + 1])
            i += 2
        elif argv[i] in known:
            names.append(argv[i])
            i += 1
        else:
            sys.exit(f"usage: peer_torch_gkd.py [--batch B] [--steps N] [{'|'.join(known)} ...]")
    return opts["--batch"], opts["--steps"], names


def main():
    tune_allocator()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(f"bench peer_torch_gkd threads={torch.get_num_threads()} torch={torch.__version__}")
    batch, nsteps, names = parse_args(sys.argv[1:])
    for name, tcfg, scfg, B, P, G, steps in SHAPES:
        if (names and name not in names) or (not names and name in ALONE):
            continue
        B, steps, V = batch or B, nsteps or steps, scfg["V"]
        teacher = make_model(tcfg)
        student = make_model(scfg)
        opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.0)
        T = P + G
        tps, phase = [], [0.0, 0.0, 0.0, 0.0]
        for step in range(steps + 1):  # step 0 warms up
            t0 = time.perf_counter()
            prompt = torch.randint(4, V, (B, P))
            seq = rollout(student, prompt, G)
            inp = seq[:, : T - 1]
            t1 = time.perf_counter()
            with torch.no_grad():
                zt = teacher(inp)
            t2 = time.perf_counter()
            opt.zero_grad(set_to_none=False)
            zs = student(inp)
            # positions P-1 .. T-2 predict the generated tokens
            loss = jsd(zs[:, P - 1:].reshape(-1, V), zt[:, P - 1:].reshape(-1, V)).mean()
            loss.backward()
            t3 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            t4 = time.perf_counter()
            if step == 0:
                continue
            tps.append(B * G / (t4 - t0))
            for i, d in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phase[i] += d
        tps.sort()
        total = sum(phase)
        flops = forward_flops(tcfg, B, T) + 4 * forward_flops(scfg, B, T)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        med = tps[len(tps) // 2]
        print(f"bench peer_torch_gkd {name} tokens_per_s={med:.0f} best_tokens_per_s={tps[-1]:.0f} "
              f"step_ms={1e3 * total / steps:.2f} gflops={1e-9 * flops * med / (B * G):.1f} sample={100 * phase[0] / total:.1f}% "
              f"teacher={100 * phase[1] / total:.1f}% student_fwdbwd={100 * phase[2] / total:.1f}% "
              f"update={100 * phase[3] / total:.1f}% generated={B * G} B={B} T={T} peak_rss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
