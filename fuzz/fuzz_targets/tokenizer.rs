//! Real tokenizers (llama.cpp's vocabulary files in `models/vocab/`, fetched by
//! `scripts/fetch-vocabs.sh`) on arbitrary input: encode the bytes as text (lossy UTF-8, with and
//! without special-token parsing), decode the bytes as token ids (out-of-range ids included),
//! one by one through the streaming detokenizer too. Nothing may panic.
//!
//! Input: byte 0 picks the tokenizer (low 3 bits) and the flags; the rest is the text / the ids.
//! Checked invariants: the streaming detokenizer's output equals `decode` (its documented
//! contract); byte-level BPE is lossless, so for a BPE vocabulary
//! `decode(encode_with(s, false, false)) == s` (no special tokens parsed or added).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use inference::gguf::GgufHeader;
use inference::tokenizer::{Tokenizer, TokenizerKind};
use libfuzzer_sys::fuzz_target;

/// GPT-2 byte-level BPE, Llama 3 BPE (its own pre-tokenizer), Qwen2 BPE, Llama 2 SPM (byte
/// fallback), Phi-3 SPM.
const VOCABS: &[&str] = &["gpt-2", "llama-bpe", "qwen2", "llama-spm", "phi-3"];

fn vocab_dir() -> PathBuf {
    std::env::var_os("WASM_CHORD_VOCAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/vocab"))
}

static TOKENIZERS: LazyLock<Vec<Tokenizer>> = LazyLock::new(|| {
    VOCABS
        .iter()
        .map(|name| {
            let p = vocab_dir().join(format!("ggml-vocab-{name}.gguf"));
            let bytes = std::fs::read(&p).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run scripts/fetch-vocabs.sh, or set WASM_CHORD_VOCAB_DIR)",
                    p.display()
                )
            });
            let h = GgufHeader::parse_complete(&bytes).expect("vocabulary header");
            Tokenizer::from_metadata(&h.metadata).expect("tokenizer")
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let toks = &*TOKENIZERS;
    let tok = &toks[(sel & 7) as usize % toks.len()];
    let parse_special = sel & 8 != 0;
    let add_special = sel & 16 != 0;

    // Encode.
    let text = String::from_utf8_lossy(rest);
    let ids = tok.encode_with(&text, add_special, parse_special);
    let n_vocab = tok.vocab_size();
    assert!(
        ids.iter().all(|&id| (id as usize) < n_vocab),
        "id out of range"
    );
    let _ = tok.decode(&ids);
    if !parse_special && tok.kind() == TokenizerKind::Bpe {
        let plain = tok.encode_with(&text, false, false);
        assert_eq!(tok.decode(&plain), text, "byte-level BPE must be lossless");
    }

    // Decode arbitrary ids: in range (mostly) and out of range.
    let raw: Vec<u32> = rest
        .chunks(4)
        .map(|c| {
            let mut a = [0u8; 4];
            a[..c.len()].copy_from_slice(c);
            let v = u32::from_le_bytes(a);
            if sel & 32 != 0 {
                v
            } else {
                v % (n_vocab as u32 + 8)
            }
        })
        .collect();
    let whole = tok.decode(&raw);
    let mut d = tok.detokenizer();
    let mut streamed = String::new();
    for &id in &raw {
        streamed.push_str(&d.push(id));
        let _ = tok.token_text(id);
        let _ = tok.token_attr(id);
        let _ = tok.piece(id);
        let _ = tok.is_eog(id);
    }
    streamed.push_str(&d.flush());
    // Documented (Detokenizer): everything it returns, flush included, equals `decode`.
    assert_eq!(streamed, whole, "streamed decode differs");
});
