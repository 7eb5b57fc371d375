#!/usr/bin/env python3
"""Make an e2e test model with a chat template of our choosing: a copy of the 4-layer SmolLM2
test model (weights and vocabulary untouched) whose `tokenizer.chat_template` is replaced, e.g.
by a hostile one that raises an error, so the page's handling of a failing template is tested
(tests/e2e, test m).

usage: scripts/make-template-model.py SRC.gguf OUT.gguf TEMPLATE      (needs PyPI gguf)
       e.g. TEMPLATE = '{{ raise_exception("boom") }}'
"""
import sys

import gguf
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, out, template = sys.argv[1], sys.argv[2], sys.argv[3]
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(out, arch=arch, endianess=reader.endianess)
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    new = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, template)}
    copy_with_new_metadata(reader, writer, new, [])


if __name__ == "__main__":
    main()
