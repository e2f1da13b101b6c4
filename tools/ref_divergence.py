"""Divergence fixtures: per-row values and autograd gradients w.r.t. the
student logits, in float64, for tests/test_divergence.c.

File tests/fixtures/divergence.bin, all little-endian:
  magic  b"GKDDIV01"
  int32  ncases
  per case:
    int32 N, int32 V, float32 tau, int32 ndiv, char[16] label (NUL padded)
    float32 student_logits[N*V], float32 teacher_logits[N*V]
    per divergence:
      int32 kind (gkd_divergence_kind: fkl 0, rkl 1, jsd 2, skl 3, srkl 4, tvd 5)
      float64 param
      float64 values[N]
      float64 grad[N*V]      d(sum_n values[n]) / d student_logits
The reference is computed in float64 from the float32 logits (the same
inputs the C code sees), from the definitions below; gradients come from
autograd, not from the analytic formulas used in src/model/divergence.c.
"""
import os
import struct

import numpy as np
import torch

DIVS = [(0, 0.0), (1, 0.0), (2, 0.1), (2, 0.5), (2, 0.9), (3, 0.1), (3, 0.5), (4, 0.1), (4, 0.5),
        (5, 0.0)]


def kl(logp, logq):
    """sum p (log p - log q), with 0 where p underflows to 0."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)


def mix(w, loga, logb):
    """log(w a + (1-w) b) by log-sum-exp."""
    return torch.logaddexp(np.log(w) + loga, np.log1p(-w) + logb)


def divergence(kind, param, zs, zt, tau):
    logq = torch.log_softmax(zs / tau, -1)
    logp = torch.log_softmax(zt / tau, -1)
    if kind == 0:
        return kl(logp, logq)
    if kind == 1:
        return kl(logq, logp)
    if kind == 2:
        logm = mix(param, logp, logq)
        return param * kl(logp, logm) + (1 - param) * kl(logq, logm)
    if kind == 3:
        return kl(logp, mix(param, logp, logq))
    if kind == 4:
        return kl(logq, mix(1 - param, logp, logq))
    if kind == 5:
        return 0.5 * (logp.exp() - logq.exp()).abs().sum(-1)
    raise ValueError(kind)


def cases():
    g = torch.Generator().manual_seed(20240501)

    def normal(n, v, s):
        return torch.randn(n, v, generator=g, dtype=torch.float64) * s

    out = []
    out.append(("random1", normal(6, 17, 2.0), normal(6, 17, 2.0), 1.0))
    out.append(("random_t2", normal(5, 23, 4.0), normal(5, 23, 4.0), 2.0))
    out.append(("random_t05", normal(5, 11, 1.5), normal(5, 11, 1.5), 0.5))
    zs, zt = normal(6, 19, 1.0), normal(6, 19, 1.0)
    for n in range(6):
        zt[n, (3 * n) % 19] += 8.0
        zs[n, (5 * n + 1) % 19] += 6.0
    out.append(("peaked", zs, zt, 1.0))
    zs, zt = normal(6, 13, 1.0), normal(6, 13, 1.0)
    for n in range(6):
        zt[n, n % 13] += 30.0
        zs[n, (n + n % 2) % 13] += 30.0  # same argmax on even rows, different on odd
    out.append(("onehot", zs, zt, 1.0))
    out.append(("onehot_t07", zs.clone(), zt.clone(), 0.7))
    sign = lambda t: torch.where(t > 0, torch.full_like(t, 80.0), torch.full_like(t, -80.0))
    out.append(("extreme80", sign(normal(6, 15, 1.0)), sign(normal(6, 15, 1.0)), 1.0))
    out.append(("extreme_unif", (torch.rand(6, 15, generator=g, dtype=torch.float64) * 160 - 80),
                (torch.rand(6, 15, generator=g, dtype=torch.float64) * 160 - 80), 1.0))
    out.append(("extreme_t3", sign(normal(4, 9, 1.0)), normal(4, 9, 30.0).clamp(-80, 80), 3.0))
    return out


def write(out_dir):
    blob = bytearray(b"GKDDIV01")
    cs = cases()
    blob += struct.pack("<i", len(cs))
    for label, zs, zt, tau in cs:
        # The C code sees float32 logits; the reference starts from the same.
        zs32 = zs.to(torch.float32)
        zt32 = zt.to(torch.float32)
        n, v = zs32.shape
        blob += struct.pack("<iifi16s", n, v, tau, len(DIVS), label.encode())
        blob += zs32.numpy().astype("<f4").tobytes() + zt32.numpy().astype("<f4").tobytes()
        tau32 = float(np.float32(tau))
        for kind, param in DIVS:
            s = zs32.to(torch.float64).requires_grad_(True)
            t = zt32.to(torch.float64)
            vals = divergence(kind, param, s, t, tau32)
            vals.sum().backward()
            assert torch.isfinite(vals).all() and torch.isfinite(s.grad).all(), (label, kind)
            blob += struct.pack("<id", kind, param)
            blob += vals.detach().numpy().astype("<f8").tobytes()
            blob += s.grad.numpy().astype("<f8").tobytes()
    path = os.path.join(out_dir, "divergence.bin")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    print(f"wrote {path} ({len(blob)} bytes, {len(cs)} cases)")
