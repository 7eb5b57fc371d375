#!/usr/bin/env python3
"""Compact float64-reference logits for the tests: from full-vocabulary f32 files
(PREFIX.<prompt>.f32, as scripts/np_reference.py --save=PREFIX writes them) keep, per golden prompt,
the logits the fidelity tests compare with — those of llama.cpp's top 20 in the golden file — plus the
reference's own top 20, exactly (f32 printed with 9 significant digits).

usage: compact-reference.py GOLDEN.json PREFIX OUT.json
"""
import json
import sys

import numpy as np

golden_path, prefix, out_path = sys.argv[1:]
g = json.load(open(golden_path))
n_vocab = g["model"]["n_vocab"]
prompts = {}
for p in g["prompts"]:
    lg = np.fromfile(f"{prefix}.{p['name']}.f32", dtype="<f4")
    assert lg.size == n_vocab, f"{p['name']}: {lg.size} logits, expected {n_vocab}"
    ids = {int(i) for i, _ in p["last_logits"]["top20"]}
    ids |= {int(i) for i in np.argsort(-lg, kind="stable")[:20]}
    prompts[p["name"]] = {
        "argmax": int(np.argmax(lg)),
        "logits": [[i, float(f"{float(lg[i]):.9g}")] for i in sorted(ids)],
    }
out = {
    "format": "wasm-chord-reference-v1",
    "golden": golden_path.rsplit("/", 1)[-1],
    "source": "float64 numpy forward pass, exactly dequantized weights, no activation quantization "
    "(scripts/np_reference.py); stored as f32",
    "n_vocab": n_vocab,
    "kept": "per prompt, the last position's logits of llama.cpp's top 20 (golden last_logits.top20) "
    "and of the reference's own top 20",
    "prompts": prompts,
}
with open(out_path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"wrote {out_path}")
