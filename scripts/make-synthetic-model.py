#!/usr/bin/env python3
"""A deterministic GGUF with a real large model's shapes and noise for weights (memory/speed tests).

    make-synthetic-model.py OUT.gguf [--arch llama3-8b] [--layers N] [--seed S] [--header-only]

llama3-8b: Llama-3-8B's shapes (llama architecture, vocab 128256, n_embd 4096, 32 layers, 32
heads, 8 KV heads, n_ff 14336, RoPE theta 500000, context 8192) as a "mostly Q6_K" file: Q6_K for
token_embd, output, attn_v, attn_output and the three FFN matrices, Q5_K for attn_q and attn_k,
F32 norms (all 1.0) — 6,499,041,280 tensor bytes (6.50 GB, 6.05 GiB). The tokenizer metadata
(`tokenizer.*`: gpt2 BPE, pre "llama-bpe", 128256 tokens, 280147 merges) is copied byte for byte
from llama.cpp's Llama 3 vocabulary file, models/vocab/ggml-vocab-llama-bpe.gguf
(scripts/fetch-vocabs.sh fetches it).

Every block is valid: f16 scales drawn small (d in [1e-4, 2e-4], so a weight is ~0.02-0.08 and
the logits stay finite), 6-bit sub-block scales and quant bits random. Same seed, same bytes. The
file is written tensor by tensor in 32 MiB pieces: memory stays small whatever the model's size.
--layers N writes the first N layers only (a quick check of the script). --header-only writes the
header and leaves the tensor data a hole (a sparse file of the full size that takes a few MB of
disk: what a "will it fit?" check reads; tests/e2e serves one). Needs numpy (not with
--header-only).
"""
import argparse
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = os.path.join(HERE, "..", "models", "vocab", "ggml-vocab-llama-bpe.gguf")

F32, Q5_K, Q6_K = 0, 13, 14
# ggml type -> (values per block, bytes per block)
BLOCKS = {F32: (1, 4), Q5_K: (256, 176), Q6_K: (256, 210)}
ALIGN = 32
PIECE = 32 << 20

ARCHS = {
    "llama3-8b": dict(
        name="synthetic-llama3-8b", n_vocab=128256, n_embd=4096, n_layer=32, n_head=32,
        n_head_kv=8, n_ff=14336, rope_theta=500000.0, n_ctx=8192, eps=1e-5,
        # ggml type of each matrix (token_embd, output and blk.N.<name>.weight)
        types=dict(token_embd=Q6_K, output=Q6_K, attn_q=Q5_K, attn_k=Q5_K, attn_v=Q6_K,
                   attn_output=Q6_K, ffn_gate=Q6_K, ffn_up=Q6_K, ffn_down=Q6_K),
        file_type=18,  # LLAMA_FTYPE_MOSTLY_Q6_K
    ),
}

# GGUF value types
U32, F32V, STR, ARR, U64 = 4, 6, 8, 9, 10
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, ty, value):
    if ty == STR:
        v = gstr(value)
    else:
        v = struct.pack({U32: "<I", F32V: "<f", U64: "<Q"}[ty], value)
    return gstr(key) + struct.pack("<I", ty) + v


def tokenizer_kvs(path):
    """The raw bytes of every `tokenizer.*` key-value pair of a GGUF file, and its token count."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)
    if data[:4] != b"GGUF":
        sys.exit(f"{path} is not a GGUF file")
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    pos = 24

    def skip_str(p):
        (n,) = struct.unpack_from("<Q", data, p)
        return p + 8 + n

    def skip_value(p, t):
        if t in SCALAR:
            return p + SCALAR[t]
        if t == STR:
            return skip_str(p)
        if t == ARR:
            et, n = struct.unpack_from("<IQ", data, p)
            p += 12
            if et in SCALAR:
                return p + n * SCALAR[et]
            for _ in range(n):
                p = skip_value(p, et)
            return p
        sys.exit(f"{path}: unknown GGUF value type {t}")

    out, n_tokens = [], None
    for _ in range(n_kv):
        start = pos
        (klen,) = struct.unpack_from("<Q", data, pos)
        key = data[pos + 8:pos + 8 + klen].decode()
        pos += 8 + klen
        (t,) = struct.unpack_from("<I", data, pos)
        if key == "tokenizer.ggml.tokens":
            n_tokens = struct.unpack_from("<Q", data, pos + 8)[0]
        pos = skip_value(pos + 4, t)
        if key.startswith("tokenizer."):
            out.append(data[start:pos])
    if n_tokens is None:
        sys.exit(f"{path} has no tokenizer.ggml.tokens")
    return out, n_tokens


def f16_scales(rng, n):
    return rng.uniform(1e-4, 2e-4, n).astype(np.float16).view(np.uint8).reshape(n, 2)


def blocks(rng, ty, n):
    """n random, valid blocks of a K-quant type, as a flat uint8 array."""
    per = BLOCKS[ty][1]
    b = np.frombuffer(rng.bytes(n * per), dtype=np.uint8).reshape(n, per).copy()
    if ty == Q6_K:  # ql[128] qh[64] scales[16] (int8) d
        b[:, 192:208] = rng.integers(1, 17, (n, 16), dtype=np.uint8)
        b[:, 208:210] = f16_scales(rng, n)
    elif ty == Q5_K:  # d dmin scales[12] (6-bit scales and mins) qh[32] qs[128]
        b[:, 0:2] = f16_scales(rng, n)
        # dmin ≈ 15.5·d (half the 5-bit range): a sub-block's mean is 0 on average
        d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
        b[:, 2:4] = (d * 15.5).astype(np.float16).view(np.uint8)
    return b.reshape(-1)


def tensors(a, n_layer):
    """(name, dims (ggml order: row length first), type) in file order."""
    e, ff, kvd = a["n_embd"], a["n_ff"], a["n_embd"] // a["n_head"] * a["n_head_kv"]
    ty = a["types"]
    out = [("token_embd.weight", (e, a["n_vocab"]), ty["token_embd"])]
    for i in range(n_layer):
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", (e,), F32),
            (p + "attn_q.weight", (e, e), ty["attn_q"]),
            (p + "attn_k.weight", (e, kvd), ty["attn_k"]),
            (p + "attn_v.weight", (e, kvd), ty["attn_v"]),
            (p + "attn_output.weight", (e, e), ty["attn_output"]),
            (p + "ffn_norm.weight", (e,), F32),
            (p + "ffn_gate.weight", (e, ff), ty["ffn_gate"]),
            (p + "ffn_up.weight", (e, ff), ty["ffn_up"]),
            (p + "ffn_down.weight", (ff, e), ty["ffn_down"]),
        ]
    out += [("output_norm.weight", (e,), F32), ("output.weight", (e, a["n_vocab"]), ty["output"])]
    return out


def nbytes(dims, ty):
    n = 1
    for d in dims:
        n *= d
    per, size = BLOCKS[ty]
    return n // per * size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--arch", default="llama3-8b", choices=sorted(ARCHS))
    ap.add_argument("--layers", type=int, help="write only the first N layers")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--header-only", action="store_true",
                    help="the header, then a hole of the tensors' size (a sparse file)")
    args = ap.parse_args()
    a = dict(ARCHS[args.arch])
    n_layer = a["n_layer"] if args.layers is None else args.layers

    tok, n_tokens = tokenizer_kvs(VOCAB)
    if n_tokens != a["n_vocab"]:
        print(f"note: {VOCAB} has {n_tokens} tokens: the vocabulary is {n_tokens}", file=sys.stderr)
        a["n_vocab"] = n_tokens

    ar = "llama"
    meta = [
        kv("general.architecture", STR, ar),
        kv("general.name", STR, a["name"]),
        kv("general.file_type", U32, a["file_type"]),
        kv(f"{ar}.vocab_size", U32, a["n_vocab"]),
        kv(f"{ar}.context_length", U32, a["n_ctx"]),
        kv(f"{ar}.embedding_length", U32, a["n_embd"]),
        kv(f"{ar}.block_count", U32, n_layer),
        kv(f"{ar}.feed_forward_length", U32, a["n_ff"]),
        kv(f"{ar}.attention.head_count", U32, a["n_head"]),
        kv(f"{ar}.attention.head_count_kv", U32, a["n_head_kv"]),
        kv(f"{ar}.rope.freq_base", F32V, a["rope_theta"]),
        kv(f"{ar}.rope.dimension_count", U32, a["n_embd"] // a["n_head"]),
        kv(f"{ar}.attention.layer_norm_rms_epsilon", F32V, a["eps"]),
    ] + tok

    ts = tensors(a, n_layer)
    info, offset = [], 0
    for name, dims, ty in ts:
        info.append(gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                    + struct.pack("<IQ", ty, offset))
        offset += (nbytes(dims, ty) + ALIGN - 1) // ALIGN * ALIGN
    head = b"GGUF" + struct.pack("<IQQ", 3, len(ts), len(meta)) + b"".join(meta) + b"".join(info)
    head += b"\0" * (-len(head) % ALIGN)

    total = 0
    with open(args.out, "wb") as o:
        o.write(head)
        if args.header_only:
            o.truncate(len(head) + offset)
            print(f"{args.out}: {len(head) + offset} bytes, a header of {len(head)} and a hole")
            return
        for i, (name, dims, ty) in enumerate(ts):
            size = nbytes(dims, ty)
            rng = np.random.default_rng([args.seed, i])
            if ty == F32:
                o.write(np.ones(size // 4, dtype="<f4").tobytes())
            else:
                per = BLOCKS[ty][1]
                left = size // per
                step = PIECE // per
                while left:
                    n = min(step, left)
                    o.write(blocks(rng, ty, n).tobytes())
                    left -= n
            o.write(b"\0" * (-size % ALIGN))
            total += size
    print(f"{args.out}: {os.path.getsize(args.out)} bytes ({total} tensor bytes, {len(ts)} tensors, "
          f"{n_layer} layers, vocab {a['n_vocab']})")


if __name__ == "__main__":
    main()
