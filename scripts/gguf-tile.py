#!/usr/bin/env python3
"""Carry a large GGUF's *shape* where its bytes cannot go (the GPU machine takes 64 MiB).

    gguf-tile.py pack   MODEL.gguf OUT.tile [--keep BYTES]   # header + first blocks of each tensor
    gguf-tile.py unpack OUT.tile  MODEL.gguf                  # full-size GGUF, blocks repeated

`pack` keeps the whole header (metadata, tokenizer, tensor table) and the first whole blocks
(at most --keep bytes, default 64 KiB) of every tensor. `unpack` writes a file of the original
size and layout in which every tensor is its kept blocks repeated, with the quant bits (never
the scales) of each block XORed with a byte drawn from the block's index, so that no two rows
are alike (a wrong row index shows in a GPU-vs-CPU comparison). Same architecture, shapes,
quant types and bytes per token: it runs exactly as fast as the original (a speed test) and
every scale is a real one of the model, but the text it writes is noise.

Needs numpy for `unpack`.
"""
import json
import struct
import sys

# ggml type id -> (values per block, bytes per block)
BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2),
}
# ggml type id -> byte range of the quant bits inside a block (scales and mins stay as they are)
QBITS = {2: (2, 18), 3: (4, 20), 6: (6, 22), 7: (8, 24), 8: (2, 34), 10: (16, 80), 11: (32, 108),
         12: (16, 144), 13: (16, 176), 14: (0, 192)}
MAGIC = b"GGUF-TILE1\n"


def parse(f):
    """(data_start, [(name, type, offset, size)]) of a GGUF v2/v3 file."""
    def rd(fmt):
        n = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, f.read(n))

    def rstr():
        (n,) = rd("Q")
        return f.read(n).decode("utf-8", "replace")

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalar:
            return rd(scalar[t])[0]
        if t == 8:
            return rstr()
        if t == 9:
            et, n = rd("IQ")
            return [value(et) for _ in range(n)]
        raise ValueError(f"unknown GGUF value type {t}")

    if f.read(4) != b"GGUF":
        raise ValueError("not a GGUF file")
    (version,) = rd("I")
    if version < 2:
        raise ValueError(f"GGUF version {version} is not supported")
    n_tensors, n_kv = rd("QQ")
    align = 32
    for _ in range(n_kv):
        key = rstr()
        (t,) = rd("I")
        v = value(t)
        if key == "general.alignment":
            align = int(v)
    tensors = []
    for _ in range(n_tensors):
        name = rstr()
        (nd,) = rd("I")
        dims = rd("Q" * nd)
        ty, off = rd("IQ")
        if ty not in BLOCKS:
            raise ValueError(f"tensor {name}: ggml type {ty} not in this script's table")
        per, size = BLOCKS[ty]
        n = 1
        for d in dims:
            n *= d
        tensors.append((name, ty, off, n // per * size))
    start = (f.tell() + align - 1) // align * align
    return start, tensors


def pack(src, dst, keep):
    with open(src, "rb") as f:
        start, tensors = parse(f)
        f.seek(0, 2)
        file_size = f.tell()
        f.seek(0)
        header = f.read(start)
        entries, blobs = [], []
        for name, ty, off, size in tensors:
            block = BLOCKS[ty][1]
            n = min(size, max(block, keep // block * block))
            f.seek(start + off)
            blobs.append(f.read(n))
            entries.append({"name": name, "type": ty, "offset": start + off, "size": size, "kept": n})
    manifest = json.dumps({"file_size": file_size, "header": len(header), "tensors": entries})
    with open(dst, "wb") as o:
        o.write(MAGIC)
        o.write(struct.pack("<Q", len(manifest)))
        o.write(manifest.encode())
        o.write(header)
        for b in blobs:
            o.write(b)
    kept = sum(len(b) for b in blobs)
    print(f"{dst}: header {len(header)} B + {kept} B of {len(tensors)} tensors (of {file_size} B)")


def tiled(blob, size, ty):
    """`blob` repeated to `size` bytes, each block's quant bits XORed with a per-block byte."""
    import numpy as np

    reps = -(-size // len(blob))
    data = np.frombuffer(blob * reps, dtype=np.uint8)[:size].copy()
    if ty in QBITS:
        lo, hi = QBITS[ty]
        blocks = data.reshape(-1, BLOCKS[ty][1])
        idx = np.arange(len(blocks), dtype=np.uint64)
        # splitmix64 of the index: a non-linear hash, so no two rows share all their masks.
        z = idx + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mask = (z ^ (z >> np.uint64(31))).astype(np.uint8)
        blocks[len(blob) // BLOCKS[ty][1]:, lo:hi] ^= mask[len(blob) // BLOCKS[ty][1]:, None]
    return data.tobytes()


def unpack(src, dst):
    with open(src, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{src} is not a gguf-tile file")
        (n,) = struct.unpack("<Q", f.read(8))
        m = json.loads(f.read(n))
        header = f.read(m["header"])
        with open(dst, "wb") as o:
            o.write(header)
            for t in m["tensors"]:
                blob = f.read(t["kept"])
                if len(blob) != t["kept"]:
                    raise ValueError(f"{src} is truncated at tensor {t['name']}")
                o.seek(t["offset"])
                o.write(tiled(blob, t["size"], t.get("type")))
            o.truncate(m["file_size"])
    print(f"{dst}: {m['file_size']} B, {len(m['tensors'])} tensors")


def main(argv):
    if len(argv) >= 3 and argv[0] == "pack":
        keep = int(argv[argv.index("--keep") + 1]) if "--keep" in argv else 64 << 10
        pack(argv[1], argv[2], keep)
    elif len(argv) == 3 and argv[0] == "unpack":
        unpack(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
