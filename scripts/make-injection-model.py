#!/usr/bin/env python3
"""Make the e2e test's "hostile output" model: a copy of the 4-layer SmolLM2 test model whose
vocabulary strings for the tokens it generates greedily after "Once upon a time" (28 ',' and
284 'Ġand', see inference/tests/data/golden/smollm2-4layer-mixed.json) are replaced by HTML/Markdown
payloads. The weights are untouched, so the model emits the same token ids, and their text is a
real model's output that the app must render inert (<script>, <img onerror>, javascript: links), and
a plain https link that must open in a new tab without a handle on the app.

usage: scripts/make-injection-model.py SRC.gguf OUT.gguf      (needs PyPI gguf)
"""
import sys

import gguf
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

PAYLOADS = {
    28: "[docs](https://example.com/) <script>alert('xss-script')</script>[click me](javascript:alert('xss-link'))",
    284: " <img src=x onerror=\"alert('xss-img')\">",
}


def byte_level(text):
    """GPT-2 byte-level BPE spells a space as 'Ġ' (the other characters here are plain ASCII)."""
    return text.replace(" ", "\u0120")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(src)
    field = reader.fields[gguf.Keys.Tokenizer.LIST]
    tokens = list(field.contents())
    for i, s in PAYLOADS.items():
        tokens[i] = byte_level(s)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(out, arch=arch, endianess=reader.endianess)
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    new = {gguf.Keys.Tokenizer.LIST: MetadataDetails(gguf.GGUFValueType.ARRAY, tokens,
                                                     sub_type=gguf.GGUFValueType.STRING)}
    copy_with_new_metadata(reader, writer, new, [])


if __name__ == "__main__":
    main()
