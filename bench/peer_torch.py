#!/usr/bin/python3
"""PyTorch peer of bench/bench_model.c: the same shapes on 2 threads.

The GPT-2 shapes run GPT below; stories15m runs Llama below (RMSNorm,
interleaved rotary positions, grouped-query attention with a causal mask,
SwiGLU, no biases, head tied to the token embedding), as gkd's Llama
descriptor (docs/models.md).

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


def gpt2(V, maxT, L, C, NH):
    return dict(arch="gpt2", V=V, maxT=maxT, L=L, C=C, NH=NH)


def llama(V, maxT, L, C, NH, NKV, F, eps=1e-5, theta=10000.0):
    return dict(arch="llama", V=V, maxT=maxT, L=L, C=C, NH=NH, NKV=NKV, F=F, eps=eps, theta=theta)


# llama2.c's stories15M (random weights), as in bench/bench_model.c
STORIES15M = llama(32000, 256, 6, 288, 6, 6, 768)

SHAPES = [
    # name, config, B, T
    ("tiny", gpt2(64, 64, 4, 128, 4), 16, 64),
    ("small", gpt2(256, 128, 6, 256, 8), 16, 128),
    ("stories15m", STORIES15M, 4, 256),
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


class RMSNorm(nn.Module):
    def __init__(self, C, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    """Interleaved rotary embedding: pairs (2i, 2i+1) of each head of x
    (B, H, T, hs) turn by cos/sin (T, hs/2)."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


class LlamaBlock(nn.Module):
    def __init__(self, C, NH, NKV, F, eps):
        super().__init__()
        self.nh, self.nkv, self.hs = NH, NKV, C // NH
        self.attn_norm = RMSNorm(C, eps)
        self.wqkv = nn.Linear(C, C + 2 * NKV * self.hs, bias=False)
        self.wo = nn.Linear(C, C, bias=False)
        self.ffn_norm = RMSNorm(C, eps)
        self.wgu = nn.Linear(C, 2 * F, bias=False)  # gate rows, then up rows
        self.wdown = nn.Linear(F, C, bias=False)

    def attend(self, x, cos, sin, cache=None):
        B, T, C = x.shape
        nh, nkv, hs = self.nh, self.nkv, self.hs
        q, k, v = self.wqkv(self.attn_norm(x)).split([C, nkv * hs, nkv * hs], dim=2)
        q = rope(q.view(B, T, nh, hs).transpose(1, 2), cos, sin)
        k = rope(k.view(B, T, nkv, hs).transpose(1, 2), cos, sin)
        v = v.view(B, T, nkv, hs).transpose(1, 2)
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        if nkv != nh:  # query head h reads key/value head h // (nh / nkv)
            k = k.repeat_interleave(nh // nkv, dim=1)
            v = v.repeat_interleave(nh // nkv, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        Tk = k.shape[2]
        if T > 1:
            mask = torch.ones(T, Tk, dtype=torch.bool).tril(diagonal=Tk - T)
            att = att.masked_fill(~mask, float("-inf"))
        y = att.softmax(dim=-1) @ v
        return self.wo(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attend(x, cos, sin, cache)
        gate, up = self.wgu(self.ffn_norm(x)).chunk(2, dim=-1)
        return x + self.wdown(F.silu(gate) * up)


class Llama(nn.Module):
    def __init__(self, V, maxT, L, C, NH, NKV, F, eps, theta):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.blocks = nn.ModuleList([LlamaBlock(C, NH, NKV, F, eps) for _ in range(L)])
        self.norm_f = RMSNorm(C, eps)
        hs = C // NH
        # computed in double and rounded to float, as gkd does
        freq = theta ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
        ang = torch.outer(torch.arange(maxT, dtype=torch.float64), freq)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, idx, pos0=0, caches=None, last=False):
        """As GPT.forward."""
        T = idx.shape[1]
        cos, sin = self.cos[pos0:pos0 + T], self.sin[pos0:pos0 + T]
        x = self.wte(idx)
        for i, b in enumerate(self.blocks):
            x = b(x, cos, sin, None if caches is None else caches[i])
        if last:
            x = x[:, -1:]
        return self.norm_f(x) @ self.wte.weight.t()


def make_model(cfg):
    """The model of a config from gpt2() or llama()."""
    if cfg["arch"] == "gpt2":
        return GPT(cfg["V"], cfg["maxT"], cfg["L"], cfg["C"], cfg["NH"])
    return Llama(cfg["V"], cfg["maxT"], cfg["L"], cfg["C"], cfg["NH"], cfg["NKV"], cfg["F"],
                 cfg["eps"], cfg["theta"])


def layer_weights(cfg):
    """Weights one token multiplies in one layer, as bench/bench_model.c:
    12 C^2 for GPT-2, C (C + 2KV) + C^2 + 3 C F for Llama."""
    C = cfg["C"]
    if cfg["arch"] == "gpt2":
        return 12.0 * C * C
    KV = C // cfg["NH"] * cfg["NKV"]
    return C * (C + 2.0 * KV) + C * C + 3.0 * C * cfg["F"]


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
DECODE_B = 16


def main():
    # 2 threads like `make bench`; PEER_THREADS overrides for experiments.
    tune_allocator()
    torch.set_num_threads(int(os.environ.get("PEER_THREADS", "2")))
    shapes = [a for a in sys.argv[1:] if a not in MODES]
    modes = [a for a in sys.argv[1:] if a in MODES] or MODES
    torch.manual_seed(0)
    print(f"bench peer_torch threads={torch.get_num_threads()} torch={torch.__version__}")
    for name, cfg, B, T in SHAPES:
        if shapes and name not in shapes:
            continue
        V, L, C = cfg["V"], cfg["L"], cfg["C"]
        model = make_model(cfg)
        idx = torch.randint(0, V, (B, T))
        tgt = torch.randint(0, V, (B, T))
        flops = (2.0 * (L * layer_weights(cfg) + C * V) + L * 4.0 * T * C) * B * T

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
        # B=16 sequences whatever the training batch, as bench/bench_decode.c
        prompt = idx[:, : T // 2] if B == DECODE_B else torch.randint(0, V, (DECODE_B, T // 2))
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
        print(f"bench peer_torch {name} decode tokens_per_s={DECODE_B * new / dt:.0f} "
              f"ms_per_iter={dt * 1e3:.2f}")


if __name__ == "__main__":
    main()
