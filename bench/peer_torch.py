#!/usr/bin/python3
"""PyTorch peer of bench/bench_model.c: the same GPT shapes on 2 threads.

Prints, like the C benchmark,
  bench peer_torch <shape> <fwd|fwdbwd|decode> tokens_per_s=... gflops=... ms_per_iter=...
fwd/fwdbwd run a (B, T) batch with mean cross-entropy; decode is greedy with a
per-layer K/V cache, B=16, a T/2-token prompt (prefilled in one call that
computes the logits of its last position only, as gkd's decoder) then T/2
generated tokens
(tokens_per_s counts generated tokens; the median of 7 rollouts after a
warm-up, as bench/bench_decode.c). Run with /usr/bin/python3 (torch 1.13);
optional arguments name the shapes and modes to run (default all), e.g.
`peer_torch.py small decode`.
"""
import ctypes
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = [
    # name, V, maxT, L, C, NH, B, T
    ("tiny", 64, 64, 4, 128, 4, 16, 64),
    ("small", 256, 128, 6, 256, 8, 16, 128),
]


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.nh = NH
        self.ln1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C)
        self.fc = nn.Linear(C, 4 * C)
        self.fcproj = nn.Linear(4 * C, C)

    def attend(self, x, cache=None):
        B, T, C = x.shape
        hs = C // self.nh
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, self.nh, hs).transpose(1, 2)
        k = k.view(B, T, self.nh, hs).transpose(1, 2)
        v = v.view(B, T, self.nh, hs).transpose(1, 2)
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        Tk = k.shape[2]
        if T > 1:
            mask = torch.ones(T, Tk, dtype=torch.bool).tril(diagonal=Tk - T)
            att = att.masked_fill(~mask, float("-inf"))
        y = att.softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x, cache=None):
        x = x + self.attend(x, cache)
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, maxT, L, C, NH):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.blocks = nn.ModuleList([Block(C, NH) for _ in range(L)])
        self.lnf = nn.LayerNorm(C)

    def forward(self, idx, pos0=0, caches=None, last=False):
        """Logits (B, T, V); with last, (B, 1, V) of the last position only,
        as a decoder's prefill needs (gkd's computes no others)."""
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(pos0, pos0 + T))
        for i, b in enumerate(self.blocks):
            x = b(x, None if caches is None else caches[i])
        if last:
            x = x[:, -1:]
        return self.lnf(x) @ self.wte.weight.t()


def tune_allocator():
    """Give PyTorch the allocator behaviour it has in a long-running process.

    Decoding with a growing K/V cache allocates and frees tensors of a few
    hundred KiB every step. glibc serves those with mmap and returns them
    with munmap (page faults on every step) until a large enough free has
    raised its threshold, so a fresh process decodes up to 40% slower than
    one that ran a forward and backward first. Fixing the thresholds makes
    the peer's speed independent of what ran before it.
    """
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    if not (libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)):
        sys.exit("peer_torch: mallopt refused the allocator thresholds")


def timed(fn, min_time=1.5, min_iters=3):
    fn()  # warm-up
    iters, t0 = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - t0 < min_time:
        fn()
        iters += 1
    return (time.perf_counter() - t0) / iters


def median_time(fn, runs=7):
    """Median seconds of `runs` calls after a warm-up of at least two calls
    and one second, as bench/bench_decode.c does, so neither side's first
    calls (caches, thread start) count."""
    t0, warm = time.perf_counter(), 0
    while warm < 2 or time.perf_counter() - t0 < 1.0:
        fn()
        warm += 1
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[runs // 2]


MODES = ("fwd", "fwdbwd", "decode")


def main():
    # 2 threads like `make bench`; PEER_THREADS overrides for experiments.
    tune_allocator()
    torch.set_num_threads(int(os.environ.get("PEER_THREADS", "2")))
    shapes = [a for a in sys.argv[1:] if a not in MODES]
    modes = [a for a in sys.argv[1:] if a in MODES] or MODES
    torch.manual_seed(0)
    print(f"bench peer_torch threads={torch.get_num_threads()} torch={torch.__version__}")
    for name, V, maxT, L, C, NH, B, T in SHAPES:
        if shapes and name not in shapes:
            continue
        model = GPT(V, maxT, L, C, NH)
        idx = torch.randint(0, V, (B, T))
        tgt = torch.randint(0, V, (B, T))
        flops = (2.0 * (12 * L * C * C + C * V) + L * 4.0 * T * C) * B * T

        def fwd():
            with torch.no_grad():
                model(idx)

        def fwdbwd():
            model.zero_grad(set_to_none=False)
            loss = F.cross_entropy(model(idx).view(-1, V), tgt.view(-1))
            loss.backward()

        for mode, fn, mult in (("fwd", fwd, 1.0), ("fwdbwd", fwdbwd, 3.0)):
            if mode not in modes:
                continue
            dt = timed(fn)
            print(f"bench peer_torch {name} {mode} tokens_per_s={B * T / dt:.0f} "
                  f"gflops={mult * flops / dt * 1e-9:.1f} ms_per_iter={dt * 1e3:.2f}")

        if "decode" not in modes:
            continue
        prompt = idx[:, : T // 2]
        new = T - T // 2

        def decode():
            with torch.no_grad():
                caches = [[None, None] for _ in range(L)]
                logits = model(prompt, 0, caches, last=True)
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                for pos in range(T // 2, T - 1):
                    logits = model(nxt, pos, caches)
                    nxt = logits[:, -1].argmax(-1, keepdim=True)

        dt = median_time(decode)
        print(f"bench peer_torch {name} decode tokens_per_s={B * new / dt:.0f} "
              f"ms_per_iter={dt * 1e3:.2f}")


if __name__ == "__main__":
    main()
