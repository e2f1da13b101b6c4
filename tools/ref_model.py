"""PyTorch reference for the GPT model and AdamW (tests/test_model.c).

Writes tests/fixtures/model_ref.bin, little-endian, in this order:

  header   8 bytes magic b"GKDMREF1"
           int32 x 10: version (1), V, maxT, L, C, NH, B, T, num_params, n_steps
           float32 x 6: lr, beta1, beta2, eps, weight_decay, clip_max_norm
  params0  float32 (num_params)   initial parameters, gkd layout (model.h)
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

Every AdamW step recomputes the loss on the same batch. Weight decay applies
to wte, wpe, qkvw, attprojw, fcw, fcprojw only (gkd_param_is_decayed). The
parameters are random (not GPT-2 init): biases and LayerNorm parameters are
non-trivial so that their gradients are checked too.
"""
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

V, MAXT, L, C, NH, B, T = 20, 16, 2, 32, 2, 3, 16
LR, BETA1, BETA2, EPS, WD, CLIP = 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.5
N_STEPS = 3

NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
SHAPES = {
    "wte": (V, C), "wpe": (MAXT, C), "ln1w": (L, C), "ln1b": (L, C),
    "qkvw": (L, 3 * C, C), "qkvb": (L, 3 * C), "attprojw": (L, C, C), "attprojb": (L, C),
    "ln2w": (L, C), "ln2b": (L, C), "fcw": (L, 4 * C, C), "fcb": (L, 4 * C),
    "fcprojw": (L, C, 4 * C), "fcprojb": (L, C), "lnfw": (C,), "lnfb": (C,),
}
DECAYED = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}


def make_params(gen):
    p = {}
    for n in NAMES:
        shape = SHAPES[n]
        if n in ("ln1w", "ln2w", "lnfw"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif n.endswith("b"):
            t = 0.05 * torch.randn(shape, generator=gen)
        else:
            t = 0.08 * torch.randn(shape, generator=gen)
        p[n] = t.float().requires_grad_(True)
    return p


def forward(p, tokens):
    Bq, Tq = tokens.shape
    hs = C // NH
    x = p["wte"][tokens] + p["wpe"][:Tq].unsqueeze(0)
    causal = torch.tril(torch.ones(Tq, Tq, dtype=torch.bool))
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = F.linear(h, p["qkvw"][l], p["qkvb"][l])
        q, k, v = qkv.split(C, dim=2)
        q = q.view(Bq, Tq, NH, hs).transpose(1, 2)
        k = k.view(Bq, Tq, NH, hs).transpose(1, 2)
        v = v.view(Bq, Tq, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(Bq, Tq, C)
        x = x + F.linear(y, p["attprojw"][l], p["attprojb"][l])
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        h = F.gelu(F.linear(h, p["fcw"][l], p["fcb"][l]), approximate="tanh")
        x = x + F.linear(h, p["fcprojw"][l], p["fcprojb"][l])
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
    return x @ p["wte"].t()


def loss_fn(logits, targets, mask):
    sel = mask.reshape(-1) != 0
    return F.cross_entropy(logits.reshape(-1, V)[sel], targets.reshape(-1)[sel])


def flat(tensors):
    return np.concatenate([t.detach().reshape(-1).numpy().astype("<f4") for t in tensors])


def train(p0, tokens, targets, mask, clip):
    p = {n: p0[n].detach().clone().requires_grad_(True) for n in NAMES}
    groups = [
        {"params": [p[n] for n in NAMES if n in DECAYED], "weight_decay": WD},
        {"params": [p[n] for n in NAMES if n not in DECAYED], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(BETA1, BETA2), eps=EPS, foreach=False)
    norms = []
    for _ in range(N_STEPS):
        opt.zero_grad()
        loss_fn(forward(p, tokens), targets, mask).backward()
        if clip:
            norms.append(float(torch.nn.utils.clip_grad_norm_([p[n] for n in NAMES], CLIP)))
        opt.step()
    return flat([p[n] for n in NAMES]), norms


def write(out_dir):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    p = make_params(gen)
    tokens = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    mask = torch.ones(B, T)
    mask[0, :4] = 0           # a masked prompt
    mask[1, 11:] = 0          # right padding
    mask[2, 0:16:3] = 0       # scattered positions
    logits = forward(p, tokens)
    loss = loss_fn(logits, targets, mask)
    loss.backward()
    after, _ = train(p, tokens, targets, mask, clip=False)
    after_c, norms = train(p, tokens, targets, mask, clip=True)
    assert all(n > CLIP for n in norms), f"clipping inactive: norms {norms}"
    num_params = sum(int(np.prod(SHAPES[n])) for n in NAMES)
    path = os.path.join(out_dir, "model_ref.bin")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"GKDMREF1")
        f.write(struct.pack("<10i", 1, V, MAXT, L, C, NH, B, T, num_params, N_STEPS))
        f.write(struct.pack("<6f", LR, BETA1, BETA2, EPS, WD, CLIP))
        f.write(flat([p[n] for n in NAMES]).tobytes())
        f.write(tokens.numpy().astype("<i4").tobytes())
        f.write(targets.numpy().astype("<i4").tobytes())
        f.write(mask.numpy().astype("<f4").tobytes())
        f.write(logits.detach().numpy().astype("<f4").tobytes())
        f.write(np.array([loss.item()], dtype="<f4").tobytes())
        f.write(flat([p[n].grad for n in NAMES]).tobytes())
        f.write(after.tobytes())
        f.write(np.array(norms, dtype="<f4").tobytes())
        f.write(after_c.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    print(f"wrote {path}: {num_params} params, loss {loss.item():.6f}, clip norms {norms}")
