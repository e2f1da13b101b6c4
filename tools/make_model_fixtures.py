#!/usr/bin/python3
"""Tiny random-weight models in the file formats other tools write, with
reference outputs from an independent PyTorch forward of each format's own
convention, for gkd's model loaders.

Usage: /usr/bin/python3 tools/make_model_fixtures.py [OUTDIR]
       (default tests/fixtures/models; needs Debian's python3-torch)

Files (all little-endian; weights are seeded torch.Generator draws):

  stories_v0.bin, stories_v0.tsv, stories_v0.ids.txt
      llama2.c legacy file (export.py legacy_export, read by run.c): 7 int32
      dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative:
      unshared classifier), seq_len; float32 token_embedding (V,dim),
      rms_att (L,dim), wq (L,dim,dim), wk (L,kvdim,dim), wv (L,kvdim,dim),
      wo (L,dim,dim), rms_ffn (L,dim), w1 (L,hidden,dim), w2 (L,dim,hidden),
      w3 (L,hidden,dim), rms_final (dim), freq_cis_real (seq_len,hs/2),
      freq_cis_imag (seq_len,hs/2), wcls (V,dim).
      dim 32, hidden 80, 2 layers, 4 heads, 2 kv heads (GQA), vocab 40,
      seq_len 24, unshared classifier.
  stories_v1.bin, stories_v1.tsv, stories_v1.ids.txt
      export.py version1_export: uint32 0x616b3432 ("ak42"), int32 1, the 7
      int32 (vocab positive), uint8 shared_classifier, zeros to byte 256;
      float32 rms_att of every layer, rms_ffn of every layer, rms_final,
      token_embedding, then wq, wk, wv, wo, w1, w2, w3 (each for every
      layer); wcls only when not shared.
      dim 36, hidden 72, 2 layers, 3 heads, 3 kv heads, vocab 32, seq_len 16,
      shared classifier.
  llama_hf/        model.safetensors (F32), config.json, reference.tsv, ids.txt
      Hugging Face LlamaForCausalLM: model.embed_tokens.weight,
      model.layers.{i}.input_layernorm.weight,
      model.layers.{i}.self_attn.{q,k,v,o}_proj.weight,
      model.layers.{i}.post_attention_layernorm.weight,
      model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.norm.weight,
      lm_head.weight. hidden 48, intermediate 64, 2 layers, 6 heads, 2 kv
      heads (GQA), vocab 56, max_position_embeddings 32, untied.
  llama_hf_bf16/   the same names, tie_word_embeddings true (no
      lm_head.weight), BF16: hidden 32, intermediate 48, 2 layers, 4 heads,
      1 kv head, vocab 48, max_position_embeddings 20.
  llama_hf_f16/    the model of llama_hf_bf16 (same float32 draws) stored F16.
  gpt2_hf/         GPT2LMHeadModel as the hub's gpt2 model.safetensors stores
      it: no name prefix (wte.weight, wpe.weight, h.{i}.ln_1.weight/bias,
      h.{i}.attn.bias (1,1,n_positions,n_positions) F32 causal-mask buffer
      (tril of ones), h.{i}.attn.c_attn.weight (C,3C) and .bias,
      h.{i}.attn.c_proj.weight (C,C) and .bias, h.{i}.ln_2.weight/bias,
      h.{i}.mlp.c_fc.weight (C,4C) and .bias, h.{i}.mlp.c_proj.weight (4C,C)
      and .bias, ln_f.weight/bias), F32, head tied to wte. n_embd 32,
      2 layers, 4 heads, n_positions 24, vocab 50.
  gpt2_hf_prefixed/ the same model as save_pretrained writes it: names
      prefixed "transformer.", no attn.bias buffers, no lm_head.weight
      (tied), F16 weights.

Conventions of the references:
  llama2.c (stories_*): RMSNorm eps 1e-5, RoPE theta 10000 interleaved
    (pair i of a head is channels (2i, 2i+1)), computed as complex numbers
    times polar(1, pos * 10000^(-2i/hs)), as Meta's and llama2.c's model.py.
    The legacy file's freq_cis tables are cos and sin of those angles
    computed in float32 as model.py does; the reference uses float64 angles.
  Hugging Face Llama (llama_hf*): RMSNorm eps 1e-6 (rms_norm_eps), rope_theta
    10000, rotate_half RoPE (pair i is channels (i, i+hs/2); cos/sin repeated
    over both halves; q*cos + cat(-q2, q1)*sin).
  Both: x = emb[tok]; per layer x += wo(attn(rope(wq h), rope(wk h), wv h))
    with h = rmsnorm(x)*attn_norm, scores / sqrt(hs), causal, query head j
    reads kv head j // (n_heads/n_kv_heads); x += w2(silu(w1 h) * w3 h) with
    h = rmsnorm(x)*ffn_norm; logits = (rmsnorm(x)*norm) @ head^T;
    rmsnorm(x) = x / sqrt(mean(x^2) + eps). (HF: gate = w1, up = w3,
    down = w2.)
  GPT-2 (gpt2_hf*): Conv1D weights are (in, out), y = x @ W + b; LayerNorm
    eps 1e-5; x = wte[tok] + wpe[pos]; x += c_proj(attn(c_attn(ln_1 x)))
    with c_attn's output split as q | k | v (C each), head j taking channels
    j*hs..(j+1)*hs-1, scores / sqrt(hs), causal; x += mlp_c_proj(gelu_new(
    c_fc(ln_2 x))), gelu_new the tanh approximation; logits =
    ln_f(x) @ wte^T.

safetensors files are written as the reference writer does: u64 header
length N, N bytes of JSON {"__metadata__": {"format": "pt"}, name: {"dtype",
"shape", "data_offsets": [begin, end]}, ...} padded with spaces to a
multiple of 8, then the data, tensors in header order, which is sorted by
name (one dtype per file, so the writer's dtype-then-name order). BF16 and
F16 weights are float32 draws rounded to nearest even.

Every reference is computed in float64 from the weights decoded back from
the written bytes (so from the rounded BF16/F16 values), never from the
draws. The script checks that the decoded weights equal the (rounded)
draws, and that the llama2.c and Hugging Face forwards agree on one model
once its q and k rows are permuted as llama2.c's export.py does.

ids.txt (or NAME.ids.txt): 3 token sequences, one a line, ids separated by
one space; the first as long as the model's context, then a shorter one,
then one of 2 tokens. Ids 0 and V-1 both occur in the first.

reference.tsv (or NAME.tsv): '#' lines are comments (the model and the
format); every other line has tab-separated fields:
  seq     k  n  ids            sequence k (0, 1, 2): n tokens, space-separated
                               (line k of ids.txt)
  nll     k  value             mean over t = 1..n-1 of
                               -log softmax(logits at position t-1)[ids[t]]
                               (the first id only conditions)
  logits  k  V  v0 v1 ...      the V logits at the last position n-1,
                               space-separated
Each seq line is followed by its nll and logits lines. Numbers are %.9g of
the float64 values.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")

D = torch.float64


# ----------------------------------------------------------------- weights

def draw(gen, shape, std):
    return std * torch.randn(shape, generator=gen, dtype=torch.float32)


def llama_weights(cfg, seed):
    """float32 draws in llama2.c's naming, (out, in) matrices."""
    gen = torch.Generator().manual_seed(seed)
    dim, hid, nh, nkv, V = cfg["dim"], cfg["hidden"], cfg["nh"], cfg["nkv"], cfg["V"]
    kvdim = nkv * (dim // nh)
    w = {"emb": draw(gen, (V, dim), 0.5), "layers": []}
    for _ in range(cfg["L"]):
        w["layers"].append({
            "rms_att": 1.0 + draw(gen, (dim,), 0.1),
            "wq": draw(gen, (dim, dim), 0.35), "wk": draw(gen, (kvdim, dim), 0.35),
            "wv": draw(gen, (kvdim, dim), 0.2), "wo": draw(gen, (dim, dim), 0.1),
            "rms_ffn": 1.0 + draw(gen, (dim,), 0.1),
            "w1": draw(gen, (hid, dim), 0.15), "w2": draw(gen, (dim, hid), 0.1),
            "w3": draw(gen, (hid, dim), 0.15)})
    w["norm"] = 1.0 + draw(gen, (dim,), 0.1)
    w["wcls"] = None if cfg["tied"] else draw(gen, (V, dim), 0.3)
    return w


def gpt2_weights(cfg, seed):
    """float32 draws, Conv1D (in, out) matrices, GPT-2's names without prefix."""
    gen = torch.Generator().manual_seed(seed)
    C, V, T = cfg["C"], cfg["V"], cfg["maxT"]
    w = {"wte.weight": draw(gen, (V, C), 0.5), "wpe.weight": draw(gen, (T, C), 0.3)}
    for i in range(cfg["L"]):
        h = f"h.{i}."
        w[h + "ln_1.weight"] = 1.0 + draw(gen, (C,), 0.1)
        w[h + "ln_1.bias"] = draw(gen, (C,), 0.05)
        w[h + "attn.c_attn.weight"] = draw(gen, (C, 3 * C), 0.3)
        w[h + "attn.c_attn.bias"] = draw(gen, (3 * C,), 0.05)
        w[h + "attn.c_proj.weight"] = draw(gen, (C, C), 0.1)
        w[h + "attn.c_proj.bias"] = draw(gen, (C,), 0.05)
        w[h + "ln_2.weight"] = 1.0 + draw(gen, (C,), 0.1)
        w[h + "ln_2.bias"] = draw(gen, (C,), 0.05)
        w[h + "mlp.c_fc.weight"] = draw(gen, (C, 4 * C), 0.15)
        w[h + "mlp.c_fc.bias"] = draw(gen, (4 * C,), 0.05)
        w[h + "mlp.c_proj.weight"] = draw(gen, (4 * C, C), 0.1)
        w[h + "mlp.c_proj.bias"] = draw(gen, (C,), 0.05)
    w["ln_f.weight"] = 1.0 + draw(gen, (C,), 0.1)
    w["ln_f.bias"] = draw(gen, (C,), 0.05)
    return w


def sequences(V, maxT, seed):
    gen = torch.Generator().manual_seed(seed)
    seqs = []
    for n in (maxT, maxT // 2 + 1, 2):
        seqs.append([int(t) for t in torch.randint(0, V, (n,), generator=gen)])
    seqs[0][3], seqs[0][maxT - 2] = 0, V - 1
    return seqs


# ---------------------------------------------------------------- forwards

def rmsnorm(x, w, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_angles(T, hs, theta):
    inv = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=D) / hs)
    return torch.outer(torch.arange(T, dtype=D), inv)                         # (T, hs/2)


def rope_complex(x, ang):
    """Meta / llama2.c: channels (2i, 2i+1) of a head as one complex number."""
    T, H, hs = x.shape
    xc = torch.view_as_complex(x.reshape(T, H, hs // 2, 2).contiguous())
    return torch.view_as_real(xc * torch.polar(torch.ones_like(ang), ang)[:, None, :]).reshape(T, H, hs)


def rope_rotate_half(x, ang):
    """Hugging Face: channels (i, i + hs/2)."""
    emb = torch.cat((ang, ang), dim=-1)[:, None, :]
    half = x.shape[-1] // 2
    return x * emb.cos() + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * emb.sin()


def llama_forward(w, cfg, ids, rope):
    """Logits (T, V) in float64; w in llama2.c naming, float64 tensors."""
    dim, nh, nkv, eps = cfg["dim"], cfg["nh"], cfg["nkv"], cfg["eps"]
    hs = dim // nh
    T = len(ids)
    ang = rope_angles(T, hs, cfg["theta"])
    kv = [j // (nh // nkv) for j in range(nh)]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    x = w["emb"][torch.tensor(ids)]
    for lw in w["layers"]:
        h = rmsnorm(x, lw["rms_att"], eps)
        q = rope((h @ lw["wq"].t()).reshape(T, nh, hs), ang)
        k = rope((h @ lw["wk"].t()).reshape(T, nkv, hs), ang)[:, kv]
        v = (h @ lw["wv"].t()).reshape(T, nkv, hs)[:, kv]
        att = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = torch.einsum("hqk,khd->qhd", att, v).reshape(T, dim)
        x = x + y @ lw["wo"].t()
        h = rmsnorm(x, lw["rms_ffn"], eps)
        x = x + (Fn.silu(h @ lw["w1"].t()) * (h @ lw["w3"].t())) @ lw["w2"].t()
    x = rmsnorm(x, w["norm"], eps)
    return x @ (w["emb"] if w["wcls"] is None else w["wcls"]).t()


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gpt2_forward(w, cfg, ids):
    """Logits (T, V) in float64; w GPT-2 names without prefix, Conv1D (in, out)."""
    C, nh, eps = cfg["C"], cfg["nh"], 1e-5
    hs, T = C // nh, len(ids)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    x = w["wte.weight"][torch.tensor(ids)] + w["wpe.weight"][:T]
    for i in range(cfg["L"]):
        p = f"h.{i}."
        h = Fn.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(T, nh, hs) for t in qkv.split(C, dim=-1))
        att = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = torch.einsum("hqk,khd->qhd", att, v).reshape(T, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = Fn.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        h = gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = Fn.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].t()


# ------------------------------------------------------------------ llama2.c

def f32_bytes(t):
    return t.detach().reshape(-1).numpy().astype("<f4").tobytes()


def llama2c_freqs(cfg):
    # As llama2.c's model.py precompute_freqs_cis, in float32.
    hs = cfg["dim"] // cfg["nh"]
    freqs = 1.0 / (10000.0 ** (torch.arange(0, hs, 2)[: hs // 2].float() / hs))
    ang = torch.outer(torch.arange(cfg["seq_len"]).float(), freqs)
    return torch.cos(ang), torch.sin(ang)


def llama2c_legacy(w, cfg):
    shared = w["wcls"] is None
    out = [struct.pack("<7i", cfg["dim"], cfg["hidden"], cfg["L"], cfg["nh"], cfg["nkv"],
                       cfg["V"] if shared else -cfg["V"], cfg["seq_len"]), f32_bytes(w["emb"])]
    for k in ("rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3"):
        out += [f32_bytes(lw[k]) for lw in w["layers"]]
    cos, sin = llama2c_freqs(cfg)
    out += [f32_bytes(w["norm"]), f32_bytes(cos), f32_bytes(sin)]
    if not shared:
        out.append(f32_bytes(w["wcls"]))
    return b"".join(out)


def llama2c_v1(w, cfg):
    shared = w["wcls"] is None
    head = struct.pack("<Ii7iB", 0x616b3432, 1, cfg["dim"], cfg["hidden"], cfg["L"], cfg["nh"],
                       cfg["nkv"], cfg["V"], cfg["seq_len"], int(shared))
    out = [head + b"\0" * (256 - len(head))]
    out += [f32_bytes(lw["rms_att"]) for lw in w["layers"]]
    out += [f32_bytes(lw["rms_ffn"]) for lw in w["layers"]]
    out += [f32_bytes(w["norm"]), f32_bytes(w["emb"])]
    for k in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
        out += [f32_bytes(lw[k]) for lw in w["layers"]]
    if not shared:
        out.append(f32_bytes(w["wcls"]))
    return b"".join(out)


def read_llama2c(blob):
    """Decode a llama2.c file (either version) into float64 tensors."""
    pos = 0
    magic = struct.unpack_from("<I", blob, 0)[0]
    if magic == 0x616b3432:
        version, dim, hid, L, nh, nkv, V, seq, shared = struct.unpack_from("<i7iB", blob, 4)
        assert version == 1 and blob[37:256] == b"\0" * 219
        pos = 256
    else:
        dim, hid, L, nh, nkv, V, seq = struct.unpack_from("<7i", blob, 0)
        version, shared, V = 0, int(V > 0), abs(V)
        pos = 28
    hs, kvdim = dim // nh, nkv * (dim // nh)

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        a = np.frombuffer(blob, dtype="<f4", count=n, offset=pos).astype(np.float64)
        pos += 4 * n
        return torch.from_numpy(a.reshape(shape).copy())

    shapes = {"rms_att": (dim,), "wq": (dim, dim), "wk": (kvdim, dim), "wv": (kvdim, dim),
              "wo": (dim, dim), "rms_ffn": (dim,), "w1": (hid, dim), "w2": (dim, hid), "w3": (hid, dim)}
    layers = [{} for _ in range(L)]
    w = {}
    if version == 0:
        w["emb"] = take(V, dim)
        for k in ("rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3"):
            for lw in layers:
                lw[k] = take(*shapes[k])
        w["norm"] = take(dim)
        w["freq_cos"], w["freq_sin"] = take(seq, hs // 2), take(seq, hs // 2)
    else:
        for k in ("rms_att", "rms_ffn"):
            for lw in layers:
                lw[k] = take(*shapes[k])
        w["norm"] = take(dim)
        w["emb"] = take(V, dim)
        for k in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            for lw in layers:
                lw[k] = take(*shapes[k])
    w["layers"] = layers
    w["wcls"] = None if shared else take(V, dim)
    assert pos == len(blob), "trailing bytes"
    cfg = dict(dim=dim, hidden=hid, L=L, nh=nh, nkv=nkv, V=V, seq_len=seq, tied=shared)
    return w, cfg


# --------------------------------------------------------------- safetensors

ST_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}


def round_to(t, dtype):
    """float32 tensor -> (bytes in dtype, the rounded values as float32)."""
    if dtype == "F32":
        return f32_bytes(t), t
    if dtype == "F16":
        r = t.to(torch.float16)
        return r.numpy().astype("<f2").tobytes(), r.float()
    r = t.to(torch.bfloat16)                                                   # round to nearest even
    bits = (r.float().numpy().astype("<f4").view("<u4") >> 16).astype("<u2")
    return bits.tobytes(), r.float()


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, float32 tensor), sorted here by name."""
    tensors = sorted(tensors, key=lambda t: t[0])
    header = {"__metadata__": {"format": "pt"}}
    data, offset, rounded = [], 0, {}
    for name, dtype, t in tensors:
        raw, r = round_to(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        data.append(raw)
        rounded[name] = r
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(data))
    return rounded


def read_safetensors(path):
    """Decode every tensor to float64."""
    blob = open(path, "rb").read()
    n = struct.unpack_from("<Q", blob, 0)[0]
    assert n % 8 == 0
    header = json.loads(blob[8:8 + n])
    out, end = {}, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        assert b == end, "data not in header order"
        end = e
        raw = blob[8 + n + b:8 + n + e]
        if info["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif info["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif info["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4").astype(np.float64)
        else:
            raise ValueError(info["dtype"])
        out[name] = torch.from_numpy(a.reshape(info["shape"]).copy())
    assert 8 + n + end == len(blob), "trailing bytes"
    return out, header


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- references

def g9(x):
    return "%.9g" % x


def write_reference(tsv_path, ids_path, title, lines, seqs, logits_of):
    rows = ["# tools/make_model_fixtures.py: " + title]
    rows += ["# " + s for s in lines]
    rows += ["# seq k n ids; nll k mean NLL of ids[1..n-1]; logits k V last-position logits "
             "(tab-separated, %.9g of float64)"]
    for k, ids in enumerate(seqs):
        lg = logits_of(ids)
        assert lg.dtype == D and lg.shape[0] == len(ids)
        nll = Fn.cross_entropy(lg[:-1], torch.tensor(ids[1:]))
        rows.append("\t".join(["seq", str(k), str(len(ids)), " ".join(map(str, ids))]))
        rows.append("\t".join(["nll", str(k), g9(float(nll))]))
        rows.append("\t".join(["logits", str(k), str(lg.shape[1]), " ".join(g9(float(v)) for v in lg[-1])]))
    with open(tsv_path, "w") as f:
        f.write("\n".join(rows) + "\n")
    with open(ids_path, "w") as f:
        f.write("".join(" ".join(map(str, s)) + "\n" for s in seqs))


def same(a, b):
    return a.shape == b.shape and torch.equal(a.double(), b.double())


def llama_cfg_line(cfg, style, eps, theta):
    return (f"dim {cfg['dim']}, hidden {cfg['hidden']}, layers {cfg['L']}, heads {cfg['nh']}, "
            f"kv heads {cfg['nkv']}, vocab {cfg['V']}, context {cfg['seq_len']}, "
            f"{'tied' if cfg['tied'] else 'untied'} head, RoPE {style} theta {theta:g}, "
            f"RMSNorm eps {eps:g}")


# ------------------------------------------------------------------- models

def stories(name, cfg, seed, version):
    w = llama_weights(cfg, seed)
    blob = llama2c_legacy(w, cfg) if version == 0 else llama2c_v1(w, cfg)
    path = os.path.join(OUT, name + ".bin")
    with open(path, "wb") as f:
        f.write(blob)
    r, rcfg = read_llama2c(open(path, "rb").read())
    assert all(rcfg[k] == cfg[k] for k in rcfg), (rcfg, cfg)
    assert same(r["emb"], w["emb"]) and same(r["norm"], w["norm"])
    assert (r["wcls"] is None) == (w["wcls"] is None) and (r["wcls"] is None or same(r["wcls"], w["wcls"]))
    for a, b in zip(r["layers"], w["layers"]):
        assert all(same(a[k], b[k]) for k in b)
    if version == 0:
        hs = cfg["dim"] // cfg["nh"]
        ang = rope_angles(cfg["seq_len"], hs, 10000.0)
        assert float((r["freq_cos"] - ang.cos()).abs().max()) < 1e-5
        assert float((r["freq_sin"] - ang.sin()).abs().max()) < 1e-5
    fcfg = dict(cfg, eps=1e-5, theta=10000.0)
    seqs = sequences(cfg["V"], cfg["seq_len"], seed + 1)
    fmt = ("llama2.c legacy (version 0) file" if version == 0 else "llama2.c export.py version 1 file")
    write_reference(os.path.join(OUT, name + ".tsv"), os.path.join(OUT, name + ".ids.txt"),
                    f"{name}.bin, {fmt}",
                    [llama_cfg_line(cfg, "interleaved", 1e-5, 10000.0)], seqs,
                    lambda ids: llama_forward(r, fcfg, ids, rope_complex))
    return r, fcfg, seqs


def hf_llama_tensors(w, dtype):
    t = [("model.embed_tokens.weight", dtype, w["emb"]), ("model.norm.weight", dtype, w["norm"])]
    names = {"rms_att": "input_layernorm", "wq": "self_attn.q_proj", "wk": "self_attn.k_proj",
             "wv": "self_attn.v_proj", "wo": "self_attn.o_proj", "rms_ffn": "post_attention_layernorm",
             "w1": "mlp.gate_proj", "w3": "mlp.up_proj", "w2": "mlp.down_proj"}
    for i, lw in enumerate(w["layers"]):
        t += [(f"model.layers.{i}.{n}.weight", dtype, lw[k]) for k, n in names.items()]
    if w["wcls"] is not None:
        t.append(("lm_head.weight", dtype, w["wcls"]))
    return t, names


def hf_llama(dirname, cfg, w, dtype, torch_dtype, seq_seed):
    d = os.path.join(OUT, dirname)
    os.makedirs(d, exist_ok=True)
    tensors, names = hf_llama_tensors(w, dtype)
    rounded = write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    write_json(os.path.join(d, "config.json"), {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": cfg["dim"], "intermediate_size": cfg["hidden"],
        "num_hidden_layers": cfg["L"], "num_attention_heads": cfg["nh"],
        "num_key_value_heads": cfg["nkv"], "max_position_embeddings": cfg["seq_len"],
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": cfg["V"],
        "tie_word_embeddings": bool(cfg["tied"]), "hidden_act": "silu",
        "attention_bias": False, "torch_dtype": torch_dtype, "bos_token_id": 1, "eos_token_id": 2})
    st, header = read_safetensors(os.path.join(d, "model.safetensors"))
    assert set(st) == {n for n, _, _ in tensors}
    assert all(same(st[n], rounded[n]) and header[n]["dtype"] == dtype for n in st)
    r = {"emb": st["model.embed_tokens.weight"], "norm": st["model.norm.weight"],
         "wcls": st.get("lm_head.weight"), "layers": []}
    for i in range(cfg["L"]):
        r["layers"].append({k: st[f"model.layers.{i}.{n}.weight"] for k, n in names.items()})
    fcfg = dict(cfg, eps=1e-6, theta=10000.0)
    seqs = sequences(cfg["V"], cfg["seq_len"], seq_seed)
    write_reference(os.path.join(d, "reference.tsv"), os.path.join(d, "ids.txt"),
                    f"{dirname}/model.safetensors ({dtype}), Hugging Face LlamaForCausalLM",
                    [llama_cfg_line(cfg, "rotate_half", 1e-6, 10000.0)], seqs,
                    lambda ids: llama_forward(r, fcfg, ids, rope_rotate_half))
    return r, fcfg


def gpt2(dirname, cfg, w, prefixed, seq_seed):
    d = os.path.join(OUT, dirname)
    os.makedirs(d, exist_ok=True)
    dtype = "F16" if prefixed else "F32"
    tensors = [(("transformer." if prefixed else "") + n, dtype, t) for n, t in w.items()]
    if not prefixed:
        T = cfg["maxT"]
        mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
        tensors += [(f"h.{i}.attn.bias", "F32", mask) for i in range(cfg["L"])]
    rounded = write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    conf = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "n_embd": cfg["C"], "n_layer": cfg["L"], "n_head": cfg["nh"],
            "n_positions": cfg["maxT"], "n_ctx": cfg["maxT"], "n_inner": None,
            "vocab_size": cfg["V"], "layer_norm_epsilon": 1e-5,
            "activation_function": "gelu_new", "scale_attn_weights": True,
            "bos_token_id": cfg["V"] - 1, "eos_token_id": cfg["V"] - 1}
    if prefixed:
        conf["torch_dtype"] = "float16"
    write_json(os.path.join(d, "config.json"), conf)
    st, header = read_safetensors(os.path.join(d, "model.safetensors"))
    assert set(st) == {n for n, _, _ in tensors}
    assert all(same(st[n], rounded[n]) for n in st)
    pre = "transformer." if prefixed else ""
    r = {n: st[pre + n] for n in w}
    seqs = sequences(cfg["V"], cfg["maxT"], seq_seed)
    write_reference(os.path.join(d, "reference.tsv"), os.path.join(d, "ids.txt"),
                    f"{dirname}/model.safetensors ({dtype}), Hugging Face GPT2LMHeadModel",
                    [f"n_embd {cfg['C']}, layers {cfg['L']}, heads {cfg['nh']}, vocab {cfg['V']}, "
                     f"context {cfg['maxT']}, head tied to wte, LayerNorm eps 1e-5, gelu_new"], seqs,
                    lambda ids: gpt2_forward(r, cfg, ids))
    return r, seqs


def permute_to_hf(w, cfg):
    """llama2.c export.py's permutation of wq / wk rows (interleaved -> half)."""
    def perm(m, heads):
        rows, cols = m.shape
        return m.reshape(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)
    return dict(w, layers=[dict(lw, wq=perm(lw["wq"], cfg["nh"]), wk=perm(lw["wk"], cfg["nkv"]))
                           for lw in w["layers"]])


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    v0 = dict(dim=32, hidden=80, L=2, nh=4, nkv=2, V=40, seq_len=24, tied=0)
    r0, f0, s0 = stories("stories_v0", v0, 100, 0)
    v1 = dict(dim=36, hidden=72, L=2, nh=3, nkv=3, V=32, seq_len=16, tied=1)
    stories("stories_v1", v1, 200, 1)

    # The two RoPE conventions agree once q and k rows are permuted.
    a = llama_forward(r0, f0, s0[0], rope_complex)
    b = llama_forward(permute_to_hf(r0, f0), f0, s0[0], rope_rotate_half)
    c = llama_forward(r0, f0, s0[0], rope_rotate_half)
    assert float((a - b).abs().max()) < 1e-12, float((a - b).abs().max())
    assert float((a - c).abs().max()) > 1e-2, "RoPE style barely matters"

    hf = dict(dim=48, hidden=64, L=2, nh=6, nkv=2, V=56, seq_len=32, tied=0)
    hf_llama("llama_hf", hf, llama_weights(hf, 300), "F32", "float32", 301)
    hfb = dict(dim=32, hidden=48, L=2, nh=4, nkv=1, V=48, seq_len=20, tied=1)
    wb = llama_weights(hfb, 400)
    rb, _ = hf_llama("llama_hf_bf16", hfb, wb, "BF16", "bfloat16", 401)
    rh, _ = hf_llama("llama_hf_f16", hfb, wb, "F16", "float16", 401)
    assert not same(rb["emb"], rh["emb"])

    g = dict(C=32, L=2, nh=4, maxT=24, V=50)
    wg = gpt2_weights(g, 500)
    gpt2("gpt2_hf", g, wg, False, 501)
    gpt2("gpt2_hf_prefixed", g, wg, True, 501)

    total = 0
    for root, _, files in os.walk(OUT):
        for fn in sorted(files):
            total += os.path.getsize(os.path.join(root, fn))
    print(f"wrote {OUT}: {total} bytes")


if __name__ == "__main__":
    main()
