#!/usr/bin/python3
"""PyTorch reference for the Llama-family layers (tests/test_layers_llama.c):
RMSNorm, rotary embeddings (both pairings), SwiGLU and causal grouped-query
attention, forward and backward.

Usage: /usr/bin/python3 tools/ref_llama_layers.py  (writes
tests/fixtures/llama_layers_ref.bin; write(out_dir) does the same for
tools/reference.py).

The inputs are float32 (what the C code sees); every reference is computed
in float64 from them by the independent formulas below and rounded to
float32 once, and every input gradient comes from autograd of that formula
with the stored upstream gradient dout, not from gkd's analytic backward:

  RMSNorm     x * rsqrt(mean(x^2) + eps) * w (llama2.c's model.py)
  RoPE 0      interleaved pairs as complex numbers, x * exp(i angle)
              (view_as_complex and polar, as Meta's and llama2.c's code)
  RoPE 1      x * cos + rotate_half(x) * sin (Hugging Face's Llama)
              angle(t, i) = t * theta^(-2i/hs)
  SwiGLU      silu(gate) * up
  attention   softmax(q k^T / sqrt(hs) + causal mask) v with k, v repeated
              to the query heads (Hugging Face's repeat_kv): query head h
              reads kv head h // (NH / NKV)

File layout, all little-endian; (a, b, ...) is a row-major float32 array:

  header  8 bytes magic b"GKDLLAM1"
          int32 x 15: version (1),
                      rms_N, rms_C,
                      rope_B, rope_T, rope_NH, rope_NKV, rope_hs,
                      swi_N, swi_F,
                      att_B, att_T, att_NH, att_hs, att_ncases
          float32 x 2: rms_eps, rope_theta
          int32 x att_ncases: NKV of each attention case
  rmsnorm inp (N, C), w (C), dout (N, C),
          out (N, C), dinp (N, C), dw (C)
  rope    cos (T, hs/2), sin (T, hs/2)       the tables, float64 rounded
          qkv (B, T, W), dout (B, T, W)       W = (NH + 2 NKV) hs
          style 0: out (B, T, W), dqkv (B, T, W)
          style 1: out (B, T, W), dqkv (B, T, W)
                                              (q and k rotated, v as is;
                                              dqkv = d sum(out dout) / d qkv)
  swiglu  gu (N, 2F) = [gate | up], dout (N, F),
          out (N, F), dgu (N, 2F)
  attention, per case (C = NH hs, W = C + 2 NKV hs):
          qkv (B, T, W), dout (B, T, C),
          out (B, T, C), att (B, NH, T, T), dqkv (B, T, W)
"""
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

MAGIC = b"GKDLLAM1"
VERSION = 1
RMS_N, RMS_C, RMS_EPS = 6, 20, 1e-5
ROPE_B, ROPE_T, ROPE_NH, ROPE_NKV, ROPE_HS, ROPE_THETA = 2, 9, 4, 2, 8, 10000.0
SWI_N, SWI_F = 5, 12
ATT_B, ATT_T, ATT_NH, ATT_HS = 2, 7, 4, 4
ATT_NKV = [4, 2, 1]


def f32(t):
    return t.detach().numpy().astype("<f4").tobytes()


def randn(gen, *shape, scale=1.0):
    """float32 normal samples, returned as float64 (exactly the same values)."""
    return (scale * torch.randn(*shape, generator=gen, dtype=torch.float32)).double()


def grads(out, dout, *inputs):
    return torch.autograd.grad(out, inputs, grad_outputs=dout)


def rmsnorm(gen):
    x = randn(gen, RMS_N, RMS_C).requires_grad_(True)
    w = (1.0 + randn(gen, RMS_C, scale=0.3)).float().double().requires_grad_(True)
    dout = randn(gen, RMS_N, RMS_C)
    out = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * w
    dx, dw = grads(out, dout, x, w)
    return [x, w, dout, out, dx, dw]


def rope_angles():
    i = torch.arange(0, ROPE_HS, 2, dtype=torch.float64)
    freqs = ROPE_THETA ** (-i / ROPE_HS)
    t = torch.arange(ROPE_T, dtype=torch.float64)
    return torch.outer(t, freqs)  # (T, hs/2)


def rope_interleaved(x, angles):
    """x (B, T, heads, hs): pairs (2i, 2i+1) as complex numbers times exp(i angle)."""
    xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
    rot = torch.polar(torch.ones_like(angles), angles)  # (T, hs/2)
    return torch.view_as_real(xc * rot[None, :, None, :]).reshape(x.shape)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_half(x, angles):
    emb = torch.cat((angles, angles), dim=-1)  # (T, hs)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    return x * cos + rotate_half(x) * sin


def rope(gen):
    W = (ROPE_NH + 2 * ROPE_NKV) * ROPE_HS
    qkv = randn(gen, ROPE_B, ROPE_T, W)
    dout = randn(gen, ROPE_B, ROPE_T, W)
    angles = rope_angles()
    arrays = [angles.cos(), angles.sin(), qkv, dout]
    for fn in (rope_interleaved, rope_half):
        x = qkv.clone().requires_grad_(True)
        nq, nk = ROPE_NH * ROPE_HS, ROPE_NKV * ROPE_HS
        q = x[..., :nq].reshape(ROPE_B, ROPE_T, ROPE_NH, ROPE_HS)
        k = x[..., nq:nq + nk].reshape(ROPE_B, ROPE_T, ROPE_NKV, ROPE_HS)
        v = x[..., nq + nk:]
        out = torch.cat((fn(q, angles).reshape(ROPE_B, ROPE_T, nq),
                         fn(k, angles).reshape(ROPE_B, ROPE_T, nk), v), dim=-1)
        (dx,) = grads(out, dout, x)
        arrays += [out, dx]
    return arrays


def swiglu(gen):
    gu = randn(gen, SWI_N, 2 * SWI_F, scale=3.0).requires_grad_(True)
    dout = randn(gen, SWI_N, SWI_F)
    out = F.silu(gu[:, :SWI_F]) * gu[:, SWI_F:]
    (dgu,) = grads(out, dout, gu)
    return [gu, dout, out, dgu]


def attention(gen, nkv):
    B, T, NH, hs = ATT_B, ATT_T, ATT_NH, ATT_HS
    C, group = NH * hs, NH // nkv
    qkv = randn(gen, B, T, C + 2 * nkv * hs).requires_grad_(True)
    dout = randn(gen, B, T, C)
    q, k, v = qkv.split([C, nkv * hs, nkv * hs], dim=-1)
    q = q.reshape(B, T, NH, hs).transpose(1, 2)
    k = k.reshape(B, T, nkv, hs).transpose(1, 2).repeat_interleave(group, dim=1)
    v = v.reshape(B, T, nkv, hs).transpose(1, 2).repeat_interleave(group, dim=1)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    scores = (q @ k.transpose(-2, -1)) / np.sqrt(hs)
    att = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    out = (att @ v).transpose(1, 2).reshape(B, T, C)
    (dqkv,) = grads(out, dout, qkv)
    return [qkv, dout, out, att, dqkv]


def write(out_dir):
    gen = torch.Generator().manual_seed(20240611)
    arrays = rmsnorm(gen) + rope(gen) + swiglu(gen)
    for nkv in ATT_NKV:
        arrays += attention(gen, nkv)
    path = os.path.join(out_dir, "llama_layers_ref.bin")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<15i", VERSION, RMS_N, RMS_C, ROPE_B, ROPE_T, ROPE_NH, ROPE_NKV,
                            ROPE_HS, SWI_N, SWI_F, ATT_B, ATT_T, ATT_NH, ATT_HS, len(ATT_NKV)))
        f.write(struct.pack("<2f", RMS_EPS, ROPE_THETA))
        f.write(struct.pack(f"<{len(ATT_NKV)}i", *ATT_NKV))
        for a in arrays:
            f.write(f32(a))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    print(f"wrote {path}: {os.path.getsize(path)} bytes, {len(arrays)} arrays")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(here, "..", "tests", "fixtures"))
