#!/usr/bin/python3
"""PyTorch reference for gkd's Llama model and AdamW on it.

Usage: /usr/bin/python3 tools/ref_llama.py [OUTDIR]   (default tests/fixtures)
(write(out_dir) is the interface of tools/reference.py's parts.)

Writes two files, one per RoPE style, each from an independent PyTorch
forward written from the formulas below (not from gkd's code):

  llama_ref_interleaved.bin  V=23 maxT=16 L=2 C=32 NH=4 NKV=2 F=40, untied head,
                             theta 10000, eps 1e-5, B=3, T=16 (T = maxT)
  llama_ref_half.bin         V=19 maxT=12 L=2 C=24 NH=2 NKV=2 F=36, tied head,
                             theta 500, eps 1e-6, B=2, T=11

The model. hs = C/NH (even), KV = NKV*hs, group = NH/NKV.
  x = wte[tok]
  per layer l:
    h = rmsnorm(x) * attn_norm[l]
    qkv = h @ wqkv[l]^T        rows 0..C-1: q (head 0..NH-1, hs each),
                               rows C..C+KV-1: k, rows C+KV..C+2KV-1: v
    RoPE on q and k at position t = 0..T-1: channel pair i of a head
      (interleaved: channels (2i, 2i+1), as llama2.c and Meta's model.py;
       half:        channels (i, i+hs/2), Hugging Face's rotate_half)
      turns by angle t * theta^(-2i/hs): (a, b) -> (a cos - b sin, a sin + b cos)
    causal softmax attention, scores scaled by 1/sqrt(hs); query head h reads
      key/value head h // group
    x += y @ wo[l]^T
    h = rmsnorm(x) * ffn_norm[l]
    gu = h @ wgu[l]^T          rows 0..F-1: gate (w1), rows F..2F-1: up (w3)
    x += (silu(gate) * up) @ wdown[l]^T
  logits = (rmsnorm(x) * norm_f) @ head^T, head = wte if tied else lm_head
  rmsnorm(x) = x / sqrt(mean(x^2) + eps)
The interleaved style is computed with complex numbers (pairs viewed as
complex, times polar(1, angle)), the half style with cos/sin repeated over
both halves and torch.cat((-x2, x1)); the script checks that the two agree
once the q and k rows are permuted between the conventions (llama2.c's
export.py permutation), that a prefix's logits ignore later tokens, that
the gradient matches central differences of the loss, and that swapping the style, or the kv head of a
query head (h % NKV instead of h // group), changes the logits.

Parameters, gkd layout (flat float32, row-major, matrices (out, in)):
  wte (V,C)  attn_norm (L,C)  wqkv (L,C+2KV,C)  wo (L,C,C)  ffn_norm (L,C)
  wgu (L,2F,C)  wdown (L,C,F)  norm_f (C)  lm_head (V,C) only when untied
They are random (float32 draws of a seeded torch.Generator): the norm
weights are 1 + 0.1 randn so that their gradients are checked too; q and k
are large enough that attention is far from uniform and RoPE matters.

Each file, little-endian, in this order:

  header   8 bytes magic b"GKDLREF1"
           int32 x 14: version (1), V, maxT, L, C, NH, NKV, F, tied (1/0),
                       rope_style (0 interleaved, 1 half), B, T, num_params,
                       n_steps
           float32 x 8: eps (RMSNorm), theta (RoPE base), lr, beta1, beta2,
                        eps_adam, weight_decay, clip_max_norm
  params0  float32 (num_params)   initial parameters, gkd layout
  tokens   int32   (B*T)
  targets  int32   (B*T)
  mask     float32 (B*T)          1 = token counts in the loss, 0 = masked out
  logits   float32 (B*T*V)        forward of params0
  loss     float32 (1)            mean cross-entropy over mask != 0
  grads    float32 (num_params)   d loss / d params0, gkd layout
  after    float32 (num_params)   params after n_steps AdamW steps, no clipping
  norms    float32 (n_steps)      pre-clip global grad norms of the clipped run
  after_c  float32 (num_params)   params after n_steps AdamW steps, each step's
                                  gradient clipped to clip_max_norm first

This is the layout of model_ref.bin (tools/ref_model.py) with a longer
header. Every AdamW step (torch.optim.AdamW, foreach=False) recomputes the
loss on the same batch. Weight decay applies to wte, wqkv, wo, wgu, wdown
and lm_head, not to the norms. The forward, the gradients and the AdamW
steps are computed in float64 from the float32 parameters, with eps and
theta as the header stores them (float32); every float written is that
float64 value rounded to float32.
"""
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

LR, BETA1, BETA2, EPS_ADAM, WD, CLIP = 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.5
N_STEPS = 3

NAMES = ["wte", "attn_norm", "wqkv", "wo", "ffn_norm", "wgu", "wdown", "norm_f", "lm_head"]
NORMS = {"attn_norm", "ffn_norm", "norm_f"}
DECAYED = {"wte", "wqkv", "wo", "wgu", "wdown", "lm_head"}
INTERLEAVED, HALF = 0, 1

CONFIGS = [
    dict(file="llama_ref_interleaved.bin", V=23, maxT=16, L=2, C=32, NH=4, NKV=2, F=40,
         tied=0, rope=INTERLEAVED, theta=10000.0, eps=1e-5, B=3, T=16, seed=4242),
    dict(file="llama_ref_half.bin", V=19, maxT=12, L=2, C=24, NH=2, NKV=2, F=36,
         tied=1, rope=HALF, theta=500.0, eps=1e-6, B=2, T=11, seed=5151),
]


def names(cfg):
    return [n for n in NAMES if n != "lm_head" or not cfg["tied"]]


def shapes(cfg):
    V, L, C, F = cfg["V"], cfg["L"], cfg["C"], cfg["F"]
    KV = cfg["NKV"] * (C // cfg["NH"])
    return {"wte": (V, C), "attn_norm": (L, C), "wqkv": (L, C + 2 * KV, C), "wo": (L, C, C),
            "ffn_norm": (L, C), "wgu": (L, 2 * F, C), "wdown": (L, C, F), "norm_f": (C,),
            "lm_head": (V, C)}


# Standard deviations of the random draws (norm weights: 1 + 0.1 randn).
SCALE = {"wte": 0.5, "wqkv": 0.3, "wo": 0.1, "wgu": 0.15, "wdown": 0.1, "lm_head": 0.3}


def make_params(cfg, gen):
    """float32 draws, returned as float64 tensors (exactly the float32 values)."""
    p = {}
    for n, shape in ((n, shapes(cfg)[n]) for n in names(cfg)):
        if n in NORMS:
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float32)
        else:
            t = SCALE[n] * torch.randn(shape, generator=gen, dtype=torch.float32)
        p[n] = t.double()
    return p


def rmsnorm(x, w, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def angles(T, hs, theta):
    inv = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs)   # theta^(-2i/hs)
    return torch.outer(torch.arange(T, dtype=torch.float64), inv)             # (T, hs/2)


def rope_interleaved(x, ang):
    # x (B, T, H, hs): pairs (2i, 2i+1) as complex numbers, times e^{i angle}.
    Bq, Tq, H, hs = x.shape
    xc = torch.view_as_complex(x.reshape(Bq, Tq, H, hs // 2, 2).contiguous())
    rot = torch.polar(torch.ones_like(ang), ang).view(1, Tq, 1, hs // 2)
    return torch.view_as_real(xc * rot).reshape(Bq, Tq, H, hs)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_half(x, ang):
    emb = torch.cat((ang, ang), dim=-1)                                       # (T, hs)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    return x * cos + rotate_half(x) * sin


def forward(cfg, p, tokens, rope=None, kv_of_head=None):
    """Logits (B, T, V). rope / kv_of_head override the style and the
    query-head -> kv-head map (used only by the self-checks)."""
    rope = cfg["rope"] if rope is None else rope
    Bq, Tq = tokens.shape
    C, NH, NKV, F, L = cfg["C"], cfg["NH"], cfg["NKV"], cfg["F"], cfg["L"]
    hs, eps = C // NH, cfg["eps"]
    KV = NKV * hs
    group = NH // NKV
    kv_map = [h // group for h in range(NH)] if kv_of_head is None else kv_of_head
    ang = angles(Tq, hs, cfg["theta"])
    apply_rope = rope_interleaved if rope == INTERLEAVED else rope_half
    causal = torch.tril(torch.ones(Tq, Tq, dtype=torch.bool))
    x = p["wte"][tokens]
    for l in range(L):
        h = rmsnorm(x, p["attn_norm"][l], eps)
        qkv = h @ p["wqkv"][l].t()
        q = qkv[..., :C].reshape(Bq, Tq, NH, hs)
        k = qkv[..., C:C + KV].reshape(Bq, Tq, NKV, hs)
        v = qkv[..., C + KV:].reshape(Bq, Tq, NKV, hs)
        q, k = apply_rope(q, ang), apply_rope(k, ang)
        k = k[:, :, kv_map].transpose(1, 2)                                   # (B, NH, T, hs)
        v = v[:, :, kv_map].transpose(1, 2)
        q = q.transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(Bq, Tq, C)
        x = x + y @ p["wo"][l].t()
        h = rmsnorm(x, p["ffn_norm"][l], eps)
        gu = h @ p["wgu"][l].t()
        x = x + (Fn.silu(gu[..., :F]) * gu[..., F:]) @ p["wdown"][l].t()
    x = rmsnorm(x, p["norm_f"], eps)
    return x @ (p["wte"] if cfg["tied"] else p["lm_head"]).t()


def loss_fn(cfg, logits, targets, mask):
    sel = mask.reshape(-1) != 0
    return Fn.cross_entropy(logits.reshape(-1, cfg["V"])[sel], targets.reshape(-1)[sel])


def f32(t):
    return t.detach().reshape(-1).numpy().astype("<f4")


def flat(cfg, tensors):
    return np.concatenate([f32(tensors[n]) for n in names(cfg)])


def train(cfg, p0, tokens, targets, mask, clip):
    p = {n: t.detach().clone().requires_grad_(True) for n, t in p0.items()}
    ns = names(cfg)
    groups = [{"params": [p[n] for n in ns if n in DECAYED], "weight_decay": WD},
              {"params": [p[n] for n in ns if n not in DECAYED], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(BETA1, BETA2), eps=EPS_ADAM, foreach=False)
    norms = []
    for _ in range(N_STEPS):
        opt.zero_grad()
        loss_fn(cfg, forward(cfg, p, tokens), targets, mask).backward()
        if clip:
            norms.append(float(torch.nn.utils.clip_grad_norm_([p[n] for n in ns], CLIP)))
        opt.step()
    return flat(cfg, p), norms


def to_other_style(cfg, p):
    """The same model in the other RoPE convention: q and k rows of each head
    permuted as llama2.c's export.py does between Meta (interleaved) and
    Hugging Face (half) weights. Interleaved channel 2i+c is half channel
    c*hs/2 + i."""
    C, NH, NKV = cfg["C"], cfg["NH"], cfg["NKV"]
    hs = C // NH
    within = [2 * i + c for c in range(2) for i in range(hs // 2)]            # half row -> interleaved row
    if cfg["rope"] == HALF:
        within = [within.index(r) for r in range(hs)]                          # interleaved row -> half row
    rows = [h * hs + r for h in range(NH + NKV) for r in within]
    rows += list(range(C + NKV * hs, C + 2 * NKV * hs))                        # v rows unchanged
    q = dict(p)
    q["wqkv"] = p["wqkv"][:, rows, :]
    return q


def self_check(cfg, p, tokens, logits, targets, mask):
    other = HALF if cfg["rope"] == INTERLEAVED else INTERLEAVED
    with torch.no_grad():
        same = forward(cfg, to_other_style(cfg, p), tokens, rope=other)
        d_perm = float((same - logits).abs().max())
        d_style = float((forward(cfg, p, tokens, rope=other) - logits).abs().max())
        n = tokens.shape[1] - 3
        d_causal = float((forward(cfg, p, tokens[:, :n]) - logits[:, :n]).abs().max())
        swapped = [h % cfg["NKV"] for h in range(cfg["NH"])]
        d_kv = float((forward(cfg, p, tokens, kv_of_head=swapped) - logits).abs().max())
    assert d_perm < 1e-12, f"interleaved and half RoPE disagree after the permutation: {d_perm}"
    assert d_causal < 1e-12, f"a prefix's logits depend on later tokens: {d_causal}"
    assert d_style > 1e-2, f"RoPE style barely matters: {d_style}"
    if cfg["NKV"] not in (1, cfg["NH"]):
        assert d_kv > 1e-2, f"kv head map barely matters: {d_kv}"
    # Directional derivative of the loss against central differences.
    gen = torch.Generator().manual_seed(7)
    d = {n: torch.randn(t.shape, generator=gen, dtype=torch.float64) for n, t in p.items()}
    gdot = sum(float((p[n].grad * d[n]).sum()) for n in p)
    h = 1e-5
    with torch.no_grad():
        lp = loss_fn(cfg, forward(cfg, {n: p[n] + h * d[n] for n in p}, tokens), targets, mask)
        lm = loss_fn(cfg, forward(cfg, {n: p[n] - h * d[n] for n in p}, tokens), targets, mask)
    fd = float(lp - lm) / (2 * h)
    assert abs(fd - gdot) <= 1e-6 * max(1.0, abs(gdot)), f"gradient check: {fd} vs {gdot}"
    return d_perm, d_style, d_kv


def write_one(cfg, out_dir):
    # The forward uses eps and theta as the header stores them (float32).
    cfg = dict(cfg, eps=float(np.float32(cfg["eps"])), theta=float(np.float32(cfg["theta"])))
    gen = torch.Generator().manual_seed(cfg["seed"])
    B, T, V = cfg["B"], cfg["T"], cfg["V"]
    p = make_params(cfg, gen)
    tokens = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    mask = torch.ones(B, T, dtype=torch.float64)
    mask[0, :4] = 0              # a masked prompt
    mask[1, T - 3:] = 0          # right padding
    if B > 2:
        mask[2, 0:T:3] = 0       # scattered positions
    for t in p.values():
        t.requires_grad_(True)
    logits = forward(cfg, p, tokens)
    loss = loss_fn(cfg, logits, targets, mask)
    loss.backward()
    d_perm, d_style, d_kv = self_check(cfg, p, tokens, logits.detach(), targets, mask)
    after, _ = train(cfg, p, tokens, targets, mask, clip=False)
    after_c, norms = train(cfg, p, tokens, targets, mask, clip=True)
    assert all(n > CLIP for n in norms), f"clipping inactive: norms {norms}"
    ns = names(cfg)
    num_params = sum(int(np.prod(shapes(cfg)[n])) for n in ns)
    path = os.path.join(out_dir, cfg["file"])
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"GKDLREF1")
        f.write(struct.pack("<14i", 1, V, cfg["maxT"], cfg["L"], cfg["C"], cfg["NH"], cfg["NKV"],
                            cfg["F"], cfg["tied"], cfg["rope"], B, T, num_params, N_STEPS))
        f.write(struct.pack("<8f", cfg["eps"], cfg["theta"], LR, BETA1, BETA2, EPS_ADAM, WD, CLIP))
        f.write(flat(cfg, p).tobytes())
        f.write(tokens.numpy().astype("<i4").tobytes())
        f.write(targets.numpy().astype("<i4").tobytes())
        f.write(f32(mask).tobytes())
        f.write(f32(logits).tobytes())
        f.write(np.array([loss.item()], dtype="<f4").tobytes())
        f.write(flat(cfg, {n: p[n].grad for n in ns}).tobytes())
        f.write(after.tobytes())
        f.write(np.array(norms, dtype="<f4").tobytes())
        f.write(after_c.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    print(f"wrote {path}: {num_params} params, loss {loss.item():.6f}, clip norms "
          f"{[round(n, 4) for n in norms]}; other style differs by {d_style:.3g}, "
          f"permuted weights agree to {d_perm:.1e}, kv map h%NKV differs by {d_kv:.3g}")


def write(out_dir):
    torch.manual_seed(0)
    for cfg in CONFIGS:
        write_one(cfg, out_dir)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures")
    os.makedirs(out, exist_ok=True)
    write(out)
