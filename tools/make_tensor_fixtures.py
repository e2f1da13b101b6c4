#!/usr/bin/env python3
"""Fixtures for the safetensors and llama2.c readers (tests/test_safetensors.c,
tests/test_llama2c.c), written from the published format descriptions with
the Python standard library only (struct, json, random), independently of
the C readers.

    python3 tools/make_tensor_fixtures.py [OUTDIR]   (default tests/fixtures/tensors)

safetensors (huggingface/safetensors README): u64 little-endian header size
N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [b, e]},
"__metadata__": {str: str}}, then the data buffer (offsets relative to it).
The header is padded with spaces to a multiple of 8, as the reference
writer does.

llama2.c (karpathy/llama2.c export.py): legacy_export (version 0: 7 int32,
vocab_size negative for a separate classifier, tensors in run.c's order,
RoPE tables included) and version1_export ("ak42" magic, version 1, 7
int32, shared-classifier byte, zeros to 256 bytes, norms first).

Expected values go to .tsv files as float32 bit patterns in hex, computed
here (binary16 with struct's 'e' format, bfloat16 as the upper half of a
float32); "nan" where only NaN-ness is specified.
"""
import json
import math
import os
import random
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tensors")


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def half_expected(h):
    x = struct.unpack("<e", struct.pack("<H", h))[0]
    return "nan" if math.isnan(x) else "%08x" % f32_bits(x)


def bf16_expected(b):
    # bfloat16 is the upper 16 bits of a binary32: exact, NaN payload included.
    return "%08x" % (b << 16)


def safetensors_fixture():
    # (name, dtype, shape, raw bytes, expected float32 bits or None)
    f32 = [0x00000000, 0x80000000, 0x3fc00000, 0xc0100000, 0x00000001,  # 0, -0, 1.5, -2.25, smallest subnormal
           0x007fffff, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000,  # largest subnormal, max, inf, -inf, NaN
           0x7f800001, 0xffc12345]                                      # signalling NaN, negative NaN payload
    f16 = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff,  # 0, -0, min/max subnormal, min normal, 1, -2, 65504
           0x7c00, 0xfc00, 0x7e00, 0x3555, 0x8001, 0xfe01]                  # inf, -inf, NaN, ~1/3, -min subnormal, -NaN
    bf16 = [0x0000, 0x8000, 0x0001, 0x3f80, 0xc0a0, 0x7f80, 0xff80, 0x7fc1, 0x7f7f]
    tensors = [
        ("bf16", "BF16", [3, 3], struct.pack("<9H", *bf16), [bf16_expected(b) for b in bf16]),
        ("f32", "F32", [2, 6], struct.pack("<12I", *f32), ["%08x" % u for u in f32]),
        ("ids", "I64", [2], struct.pack("<2q", 7, -1), None),
        ("empty", "F32", [0, 3], b"", []),
        ("f16", "F16", [14], struct.pack("<14H", *f16), [half_expected(h) for h in f16]),
        ("scalar", "BF16", [], struct.pack("<H", 0x4049), [bf16_expected(0x4049)]),
        ("flags", "BOOL", [1, 1, 3], bytes([1, 0, 1]), None),
        ("weird/name.\u00e9\u2603", "F32", [1], struct.pack("<f", 0.5), ["%08x" % f32_bits(0.5)]),
    ]
    header = {}
    offset = 0
    for name, dtype, shape, raw, _ in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    header["__metadata__"] = {"format": "pt", "note": 'snow\u2603 "quoted"\ttab \u00e9',
                              "emoji": "\U0001F600", "empty": ""}
    # Keys in an order unrelated to the data's, so the reader must sort.
    keys = sorted(header, key=lambda k: (len(k), k), reverse=True)
    text = json.dumps({k: header[k] for k in keys}, ensure_ascii=True, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    blob = struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)
    with open(os.path.join(OUT, "values.safetensors"), "wb") as f:
        f.write(blob)

    base = 8 + len(text)
    rows = []
    for name, dtype, shape, raw, exp in tensors:
        begin = header[name]["data_offsets"][0]
        numel = 1
        for d in shape:
            numel *= d
        rows.append("\t".join([
            "tensor", name.encode().hex(), dtype, ",".join(map(str, shape)) or "-", str(numel),
            str(base + begin), str(len(raw)), " ".join(exp) if exp else ("-" if exp is None else "")]))
    for k, v in header["__metadata__"].items():
        rows.append("\t".join(["meta", k.encode().hex(), v.encode().hex() or "-"]))
    with open(os.path.join(OUT, "values.tsv"), "w") as f:
        f.write("# tools/make_tensor_fixtures.py: values.safetensors. tensor, name (UTF-8 hex), dtype, shape,\n")
        f.write("# numel, offset in the file, bytes, float32 bits (hex) or nan, '-' if not a float dtype;\n")
        f.write("# meta, key (UTF-8 hex), value (UTF-8 hex, '-' if empty)\n")
        f.write("\n".join(rows) + "\n")


def llama2c_fixtures():
    dim, hidden, L, nh, nkv, V, seq = 4, 6, 2, 2, 1, 3, 3
    hs = dim // nh
    rng = random.Random(14)

    def mat(rows, cols):
        # float32-representable values, so written and expected bits agree
        return [[struct.unpack("<f", struct.pack("<f", rng.uniform(-1, 1)))[0] for _ in range(cols)] for _ in range(rows)]

    emb = mat(V, dim)
    layers = []
    for _ in range(L):
        layers.append({
            "rms_att": mat(1, dim)[0], "wq": mat(nh * hs, dim), "wk": mat(nkv * hs, dim), "wv": mat(nkv * hs, dim),
            "wo": mat(dim, nh * hs), "rms_ffn": mat(1, dim)[0], "w1": mat(hidden, dim), "w2": mat(dim, hidden),
            "w3": mat(hidden, dim)})
    final = mat(1, dim)[0]
    wcls = mat(V, dim)
    # RoPE tables as llama2.c stores them (seq, hs/2); the reader skips them.
    cos = [[math.cos(p * 10000.0 ** (-2 * i / hs)) for i in range(hs // 2)] for p in range(seq)]
    sin = [[math.sin(p * 10000.0 ** (-2 * i / hs)) for i in range(hs // 2)] for p in range(seq)]

    def flat(t):
        return [x for r in t for x in r] if t and isinstance(t[0], list) else list(t)

    def pack(t):
        v = flat(t)
        return struct.pack("<%df" % len(v), *v)

    def legacy(shared):
        out = struct.pack("<7i", dim, hidden, L, nh, nkv, V if shared else -V, seq)
        out += pack(emb)
        for k in ["rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3"]:
            out += b"".join(pack(layer[k]) for layer in layers)
        out += pack(final) + pack(cos) + pack(sin)
        if not shared:
            out += pack(wcls)
        return out

    def version1(shared):
        out = struct.pack("<Ii", 0x616b3432, 1) + struct.pack("<7i", dim, hidden, L, nh, nkv, V, seq)
        out += struct.pack("<B", int(shared))
        out += b"\0" * (256 - len(out))
        out += b"".join(pack(layer["rms_att"]) for layer in layers)
        out += b"".join(pack(layer["rms_ffn"]) for layer in layers)
        out += pack(final) + pack(emb)
        for k in ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]:
            out += b"".join(pack(layer[k]) for layer in layers)
        if not shared:
            out += pack(wcls)
        return out

    files = [("tied_v0.bin", 0, 1, legacy(True)), ("untied_v0.bin", 0, 0, legacy(False)),
             ("tied_v1.bin", 1, 1, version1(True)), ("untied_v1.bin", 1, 0, version1(False))]
    rows = []
    for name, version, shared, blob in files:
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)
        rows.append("\t".join(["file", name, str(version), str(shared), str(len(blob)),
                               ",".join(map(str, [dim, hidden, L, nh, nkv, V, seq, hs]))]))

    def row(name, t, shape):
        rows.append("\t".join(["tensor", name, ",".join(map(str, shape)), " ".join("%08x" % f32_bits(x) for x in flat(t))]))

    row("tok_embeddings", emb, [V, dim])
    for l, layer in enumerate(layers):
        for k, shape in [("rms_att", [dim]), ("wq", [nh * hs, dim]), ("wk", [nkv * hs, dim]), ("wv", [nkv * hs, dim]),
                         ("wo", [dim, nh * hs]), ("rms_ffn", [dim]), ("w1", [hidden, dim]), ("w2", [dim, hidden]),
                         ("w3", [hidden, dim])]:
            row("layers.%d.%s" % (l, k), layer[k], shape)
    row("rms_final", final, [dim])
    row("wcls", wcls, [V, dim])
    with open(os.path.join(OUT, "llama2c.tsv"), "w") as f:
        f.write("# tools/make_tensor_fixtures.py: the llama2.c files. file, name, version, shared classifier,\n")
        f.write("# bytes, dim,hidden_dim,n_layers,n_heads,n_kv_heads,vocab_size,seq_len,head_size;\n")
        f.write("# tensor, name, shape, float32 bits (hex), in the reader's order (wcls: untied files only)\n")
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    safetensors_fixture()
    llama2c_fixtures()
