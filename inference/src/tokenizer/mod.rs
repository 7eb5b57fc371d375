//! Tokenizers built from GGUF metadata, matching llama.cpp's `llama_tokenize(add_special,
//! parse_special = true)` and `llama_token_to_piece` token for token.
//!
//! Two vocabulary kinds:
//! - `tokenizer.ggml.model = "llama"`: SentencePiece-style BPE over scores ([`spm`]), with byte
//!   fallback `<0xXX>` tokens (Llama 2, Gemma 3, ...).
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE over ranked merges ([`bpe`]), with the
//!   pre-tokenizer regexes that llama.cpp picks from `tokenizer.ggml.pre` ([`pretokenize`];
//!   SmolLM2, Qwen2.5, Llama 3, ...). `"gemma4"` is the same algorithm over raw UTF-8 tokens
//!   with `▁` for spaces.
//!
//! Encoding first partitions the text on special tokens (control, user-defined and unknown tokens
//! written literally in the text), longest token first, exactly as llama.cpp's
//! `tokenizer_st_partition` does; only the text between them goes through the model's algorithm.
//!
//! Decoding works on raw bytes: a token is a byte string (a byte-fallback token is one byte, so it
//! can hold part of a UTF-8 character). [`Tokenizer::decode`] and [`Detokenizer`] turn those bytes
//! into text; control tokens (BOS, EOS, `<|im_end|>`, ...) decode to nothing there, while
//! [`Tokenizer::token_piece_bytes`] gives every token's bytes including control tokens' text.

mod bpe;
mod pre_table;
mod pretokenize;
mod spm;
mod unicode;
mod unicode_data;

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::gguf::{Array, Metadata, Value};

/// Token attributes (llama.cpp's `llama_token_attr` bits, derived from `tokenizer.ggml.token_type`).
pub mod attr {
    pub const UNDEFINED: u8 = 0;
    pub const NORMAL: u8 = 1 << 0;
    pub const UNKNOWN: u8 = 1 << 1;
    pub const CONTROL: u8 = 1 << 2;
    pub const USER_DEFINED: u8 = 1 << 3;
    pub const UNUSED: u8 = 1 << 4;
    pub const BYTE: u8 = 1 << 5;
}

/// GGUF `tokenizer.ggml.token_type` values.
pub mod token_type {
    pub const NORMAL: i64 = 1;
    pub const UNKNOWN: i64 = 2;
    pub const CONTROL: i64 = 3;
    pub const USER_DEFINED: i64 = 4;
    pub const UNUSED: i64 = 5;
    pub const BYTE: i64 = 6;
}

/// Which algorithm the vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// `llama`: SentencePiece BPE over token scores, byte fallback.
    Spm,
    /// `gpt2`: byte-level BPE over ranked merges with a regex pre-tokenizer.
    Bpe,
}

/// The vocabulary shared by both algorithms.
pub(crate) struct Vocab {
    pub(crate) tokens: Vec<String>,
    pub(crate) scores: Vec<f32>,
    pub(crate) attrs: Vec<u8>,
    pub(crate) token_to_id: HashMap<String, u32>,
    pub(crate) unk_id: Option<u32>,
}

impl Vocab {
    pub(crate) fn get(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// llama.cpp's `byte_to_token` for SPM vocabularies: `<0xXX>`, else the byte itself as a
    /// one-character token, else the unknown token (llama.cpp would throw here).
    pub(crate) fn byte_to_token(&self, b: u8) -> Option<u32> {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let name = [
            b'<',
            b'0',
            b'x',
            HEX[(b >> 4) as usize],
            HEX[(b & 15) as usize],
            b'>',
        ];
        if let Some(id) = std::str::from_utf8(&name).ok().and_then(|s| self.get(s)) {
            return Some(id);
        }
        if b < 0x80 {
            let one = [b];
            if let Some(id) = std::str::from_utf8(&one).ok().and_then(|s| self.get(s)) {
                return Some(id);
            }
        }
        self.unk_id
    }
}

/// A fragment of the input after special-token partitioning.
enum Fragment {
    /// Byte range of raw text still to be tokenized.
    Text(usize, usize),
    /// A special token written literally in the text.
    Token(u32),
}

/// Byte trie over special-token texts, used to find which special tokens occur in a text at all
/// before running llama.cpp's (token-by-token) partition with only those.
#[derive(Default)]
struct Trie {
    /// Node 0 is the root. Children sorted by byte.
    children: Vec<Vec<(u8, u32)>>,
    value: Vec<Option<u32>>,
}

impl Trie {
    fn new() -> Self {
        Trie {
            children: vec![Vec::new()],
            value: vec![None],
        }
    }

    fn insert(&mut self, key: &[u8], id: u32) {
        let mut node = 0usize;
        for &b in key {
            let kids = &self.children[node];
            node = match kids.binary_search_by_key(&b, |&(c, _)| c) {
                Ok(i) => kids[i].1 as usize,
                Err(i) => {
                    let new = self.children.len();
                    self.children.push(Vec::new());
                    self.value.push(None);
                    self.children[node].insert(i, (b, new as u32));
                    new
                }
            };
        }
        self.value[node] = Some(id);
    }

    /// Every token whose text occurs somewhere in `text`.
    fn occurring(&self, text: &[u8], found: &mut HashSet<u32>) {
        for start in 0..text.len() {
            let mut node = 0usize;
            for &b in &text[start..] {
                let kids = &self.children[node];
                match kids.binary_search_by_key(&b, |&(c, _)| c) {
                    Ok(i) => node = kids[i].1 as usize,
                    Err(_) => break,
                }
                if let Some(id) = self.value[node] {
                    found.insert(id);
                }
            }
        }
    }
}

/// A tokenizer for one model, built from its GGUF metadata.
pub struct Tokenizer {
    kind: TokenizerKind,
    vocab: Vocab,
    bpe: Option<bpe::Bpe>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    /// The pre-tokenizer name followed (BPE vocabularies).
    pre_name: Option<String>,
    /// Why tokens may differ from llama.cpp's (e.g. an unknown pre-tokenizer).
    warning: Option<String>,
    eog: HashSet<u32>,
    /// Special tokens (control, user-defined, unknown), longest text first (ties: lower id first).
    special_order: Vec<u32>,
    /// Rank of each special token in `special_order`.
    special_rank: HashMap<u32, usize>,
    special_trie: Trie,
    /// Bytes of every token (llama.cpp's `token_to_piece(special = true)`), concatenated.
    piece_data: Vec<u8>,
    piece_off: Vec<u32>,
}

fn terr(msg: impl Into<String>) -> Error {
    Error::Tokenizer(msg.into())
}

/// An optional integer key: absent is fine, present with another type is an error.
fn opt_u64(md: &Metadata, key: &str) -> Result<Option<u64>> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            terr(format!(
                "`{key}` must be a non-negative integer, found {}",
                v.summary()
            ))
        }),
    }
}

fn opt_bool(md: &Metadata, key: &str) -> Result<Option<bool>> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| terr(format!("`{key}` must be a bool, found {}", v.summary()))),
    }
}

fn opt_str<'a>(md: &'a Metadata, key: &str) -> Result<Option<&'a str>> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| terr(format!("`{key}` must be a string, found {}", v.summary()))),
    }
}

/// A special-token id key: must be < vocab size when present.
fn opt_id(md: &Metadata, key: &str, n_vocab: usize) -> Result<Option<u32>> {
    match opt_u64(md, key)? {
        None => Ok(None),
        Some(id) if id < n_vocab as u64 => Ok(Some(id as u32)),
        Some(id) => Err(terr(format!(
            "`{key}` = {id} is out of range for a vocabulary of {n_vocab} tokens"
        ))),
    }
}

/// Token texts that llama.cpp treats as end-of-generation (`llama-vocab.cpp`, `special_eog_ids`).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

/// Texts llama.cpp uses to find the EOT token when the GGUF does not name one (first match wins
/// here; llama.cpp's pick among several present depends on hash order).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// FIM token texts (llama.cpp marks them control; pad/repo/sep are also end-of-generation).
const FIM_CONTROL_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// The pre-tokenizer for a `tokenizer.ggml.pre` name, and a warning when it is not llama.cpp's
/// for that name: an unknown name gets GPT-2's rules (llama.cpp refuses the model); a missing
/// one gets `default`, as in llama.cpp (which warns too).
fn resolve_pre(name: Option<&str>) -> (pre_table::PreSpec, Option<String>) {
    match name {
        None => (
            pre_table::lookup("default").unwrap_or_else(pre_table::gpt2),
            Some(
                "no `tokenizer.ggml.pre` in the model: using the `default` pre-tokenizer, as \
                 llama.cpp does; text may tokenize differently from the original tokenizer"
                    .to_owned(),
            ),
        ),
        Some(n) => match pre_table::lookup(n) {
            Some(spec) => (spec, None),
            None => (
                pre_table::gpt2(),
                Some(format!(
                    "unknown pre-tokenizer `{n}`: using GPT-2's rules; some text may tokenize \
                     differently from llama.cpp"
                )),
            ),
        },
    }
}

/// `tokenizer.ggml.merges` (Kimi-K2 may have none, as llama.cpp allows).
fn bpe_merges<'a>(md: &'a Metadata, pre: Option<&str>) -> Result<&'a [String]> {
    match md.get("tokenizer.ggml.merges") {
        None if pre == Some("kimi-k2") => Ok(&[]),
        None => Err(terr(
            "missing `tokenizer.ggml.merges` (required for BPE tokenizers)",
        )),
        Some(Value::Array(Array::String(v))) => Ok(v),
        Some(v) => Err(terr(format!(
            "`tokenizer.ggml.merges` must be an array of strings, found {}",
            v.summary()
        ))),
    }
}

impl Tokenizer {
    /// Build the tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_metadata(md: &Metadata) -> Result<Tokenizer> {
        let model = match md.get("tokenizer.ggml.model") {
            None => return Err(terr("missing `tokenizer.ggml.model`")),
            Some(Value::String(s)) => s.as_str(),
            Some(v) => {
                return Err(terr(format!(
                    "`tokenizer.ggml.model` must be a string, found {}",
                    v.summary()
                )))
            }
        };
        let kind = match model {
            "llama" => TokenizerKind::Spm,
            "gpt2" | "gemma4" => TokenizerKind::Bpe,
            other => {
                return Err(Error::Unsupported(format!(
                    "tokenizer model `{other}` (supported: `llama` (SentencePiece), `gpt2` and \
                     `gemma4` (BPE))"
                )))
            }
        };
        let gemma4 = model == "gemma4";

        // --- tokens, scores, types ---------------------------------------------------------
        let tokens: Vec<String> = match md.get("tokenizer.ggml.tokens") {
            None => return Err(terr("missing `tokenizer.ggml.tokens`")),
            Some(Value::Array(Array::String(v))) => v.clone(),
            Some(v) => {
                return Err(terr(format!(
                    "`tokenizer.ggml.tokens` must be an array of strings, found {}",
                    v.summary()
                )))
            }
        };
        let n = tokens.len();
        if n == 0 {
            return Err(terr("`tokenizer.ggml.tokens` is empty"));
        }
        if n > u32::MAX as usize / 2 {
            return Err(terr(format!("vocabulary of {n} tokens is too large")));
        }
        let mut tokens = tokens;
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                // llama.cpp does the same, so that an empty token can never match text.
                *t = format!("[EMPTY_{i}]");
            }
        }

        let scores: Vec<f32> = match md.get("tokenizer.ggml.scores") {
            None => vec![0.0; n],
            Some(Value::Array(Array::F32(v))) if v.len() >= n => v[..n].to_vec(),
            Some(Value::Array(Array::I32(v))) if v.len() >= n => {
                v[..n].iter().map(|&x| x as f32).collect()
            }
            Some(Value::Array(a @ (Array::F32(_) | Array::I32(_)))) => {
                return Err(terr(format!(
                    "`tokenizer.ggml.scores` has {} entries for {n} tokens",
                    a.len()
                )))
            }
            Some(v) => {
                return Err(terr(format!(
                    "`tokenizer.ggml.scores` must be an f32 or i32 array, found {}",
                    v.summary()
                )))
            }
        };

        let mut attrs: Vec<u8> = match md.get("tokenizer.ggml.token_type") {
            None => vec![attr::NORMAL; n],
            Some(Value::Array(a)) => {
                let types = a.to_i64s().ok_or_else(|| {
                    terr(format!(
                        "`tokenizer.ggml.token_type` must be an integer array, found {}",
                        Value::Array(a.clone()).summary()
                    ))
                })?;
                if types.len() < n {
                    return Err(terr(format!(
                        "`tokenizer.ggml.token_type` has {} entries for {n} tokens",
                        types.len()
                    )));
                }
                types[..n]
                    .iter()
                    .map(|&t| match t {
                        token_type::NORMAL => attr::NORMAL,
                        token_type::UNKNOWN => attr::UNKNOWN,
                        token_type::CONTROL => attr::CONTROL,
                        token_type::USER_DEFINED => attr::USER_DEFINED,
                        token_type::UNUSED => attr::UNUSED,
                        token_type::BYTE => attr::BYTE,
                        _ => attr::UNDEFINED,
                    })
                    .collect()
            }
            Some(v) => {
                return Err(terr(format!(
                    "`tokenizer.ggml.token_type` must be an integer array, found {}",
                    v.summary()
                )))
            }
        };

        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            if let Some(prev) = token_to_id.insert(t.clone(), i as u32) {
                return Err(terr(format!(
                    "duplicate token {t:?} in the vocabulary (ids {prev} and {i})"
                )));
            }
        }

        // --- model-specific settings (llama.cpp defaults, then GGUF keys) -----------------
        let pre_name = opt_str(md, "tokenizer.ggml.pre")?;
        let (mut bos, mut eos, unk_default) = match kind {
            TokenizerKind::Spm => (Some(1u32), Some(2u32), Some(0u32)),
            TokenizerKind::Bpe if gemma4 => (None, None, None),
            TokenizerKind::Bpe => (Some(11u32), Some(11u32), None),
        };
        let mut add_bos = kind == TokenizerKind::Spm;
        let mut add_space_prefix = kind == TokenizerKind::Spm;
        let mut warning = None;
        let mut pre_used = None;
        let bpe = match kind {
            TokenizerKind::Spm => None,
            TokenizerKind::Bpe => {
                // llama.cpp ignores `tokenizer.ggml.pre` for the gemma4 model.
                let name = if gemma4 { Some("gemma4") } else { pre_name };
                let (spec, warn) = resolve_pre(name);
                warning = warn;
                pre_used = Some(name.unwrap_or("default").to_owned());
                let merges = bpe_merges(md, name)?;
                let b = bpe::Bpe::new(spec, merges)?;
                add_bos |= spec.add_bos;
                if spec.no_bos {
                    bos = None;
                }
                Some(b)
            }
        };
        // Defaults out of range are disabled, as llama.cpp does; explicit keys must be valid.
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        bos = in_range(bos);
        eos = in_range(eos);
        let mut unk = in_range(unk_default);
        if let Some(id) = opt_id(md, "tokenizer.ggml.bos_token_id", n)? {
            bos = Some(id);
        }
        if let Some(id) = opt_id(md, "tokenizer.ggml.eos_token_id", n)? {
            eos = Some(id);
        }
        if let Some(id) = opt_id(md, "tokenizer.ggml.unknown_token_id", n)? {
            unk = Some(id);
        }
        let mut eot = opt_id(md, "tokenizer.ggml.eot_token_id", n)?;
        let mut eom = opt_id(md, "tokenizer.ggml.eom_token_id", n)?;
        let pad = opt_id(md, "tokenizer.ggml.padding_token_id", n)?;
        for key in [
            "tokenizer.ggml.seperator_token_id",
            "tokenizer.ggml.mask_token_id",
            "tokenizer.ggml.fim_pre_token_id",
            "tokenizer.ggml.fim_suf_token_id",
            "tokenizer.ggml.fim_mid_token_id",
        ] {
            opt_id(md, key, n)?;
        }
        let fim_keys = [
            ("tokenizer.ggml.fim_pad_token_id", FIM_PAD_TEXTS),
            ("tokenizer.ggml.fim_rep_token_id", FIM_REP_TEXTS),
            ("tokenizer.ggml.fim_sep_token_id", FIM_SEP_TEXTS),
        ];
        let mut fim_eog: Vec<(Option<u32>, &[&str])> = Vec::new();
        for (key, texts) in fim_keys {
            fim_eog.push((opt_id(md, key, n)?, texts));
        }
        if let Some(b) = opt_bool(md, "tokenizer.ggml.add_bos_token")? {
            add_bos = b;
        }
        // llama.cpp overrides a false `add_bos_token` for Gemma 4.
        add_bos |= bpe.as_ref().is_some_and(|b| b.spec().newline_words);
        let add_eos = opt_bool(md, "tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        if let Some(b) = opt_bool(md, "tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = b;
        }
        if add_bos && bos.is_none() {
            return Err(terr(
                "`tokenizer.ggml.add_bos_token` is true but there is no BOS token",
            ));
        }
        if add_eos && eos.is_none() {
            return Err(terr(
                "`tokenizer.ggml.add_eos_token` is true but there is no EOS token",
            ));
        }

        // --- auto-detected special tokens, as llama.cpp does by text ------------------------
        let find = |texts: &[&str]| texts.iter().find_map(|t| token_to_id.get(*t).copied());
        let mut mark_control = |id: u32| attrs[id as usize] |= attr::CONTROL;
        if eot.is_none() {
            eot = find(EOT_TEXTS);
        }
        if eom.is_none() {
            eom = find(&["<|eom_id|>"]);
        }
        for id in [eot, eom].into_iter().flatten() {
            mark_control(id);
        }
        for t in FIM_CONTROL_TEXTS {
            if let Some(&id) = token_to_id.get(*t) {
                mark_control(id);
            }
        }
        let mut eog: HashSet<u32> = HashSet::new();
        for (id, texts) in fim_eog {
            if let Some(id) = id.or_else(|| find(texts)) {
                mark_control(id);
                eog.insert(id);
            }
        }
        for t in EOG_TEXTS {
            if let Some(&id) = token_to_id.get(*t) {
                mark_control(id);
                eog.insert(id);
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());

        // --- special-token partition order -------------------------------------------------
        let mut special_order: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                attrs[i as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        special_order.sort_by(|&a, &b| {
            tokens[b as usize]
                .len()
                .cmp(&tokens[a as usize].len())
                .then(a.cmp(&b))
        });
        let special_rank = special_order
            .iter()
            .enumerate()
            .map(|(r, &id)| (id, r))
            .collect();
        let mut special_trie = Trie::new();
        for &id in &special_order {
            special_trie.insert(tokens[id as usize].as_bytes(), id);
        }

        let vocab = Vocab {
            tokens,
            scores,
            attrs,
            token_to_id,
            unk_id: unk,
        };

        // --- token pieces (token_to_piece with special = true) ----------------------------
        let mut piece_data = Vec::new();
        let mut piece_off = Vec::with_capacity(n + 1);
        piece_off.push(0u32);
        for id in 0..n {
            let a = vocab.attrs[id];
            let text = &vocab.tokens[id];
            if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                piece_data.extend_from_slice(text.as_bytes());
            } else if a & attr::NORMAL != 0 {
                match &bpe {
                    None => piece_data.extend_from_slice(text.replace('\u{2581}', " ").as_bytes()),
                    Some(b) => b.decode_token_text(text, &mut piece_data),
                }
            } else if a & attr::BYTE != 0 {
                if let Some(byte) = text.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    piece_data.push(byte);
                }
            }
            let off = u32::try_from(piece_data.len())
                .map_err(|_| terr("token texts exceed 4 GiB in total"))?;
            piece_off.push(off);
        }

        Ok(Tokenizer {
            kind,
            vocab,
            bpe,
            bos,
            eos,
            eot,
            eom,
            pad,
            add_bos,
            add_eos,
            add_space_prefix,
            pre_name: pre_used,
            warning,
            eog,
            special_order,
            special_rank,
            special_trie,
            piece_data,
            piece_off,
        })
    }

    /// Tokenize like llama.cpp's `llama_tokenize(text, add_special, parse_special = true)`:
    /// special tokens written in the text become single tokens; with `add_special`, BOS is
    /// prepended when the model adds BOS and EOS appended when it adds EOS.
    pub fn encode(&self, text: &str, add_special: bool) -> Vec<u32> {
        self.encode_with(text, add_special, true)
    }

    /// llama.cpp's `llama_tokenize(text, add_special, parse_special)`: with `parse_special`
    /// false, control and unknown tokens written in the text are tokenized as plain text
    /// (user-defined tokens are still recognised), as llama.cpp's tokenizer tests do.
    pub fn encode_with(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let frags = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match self.kind {
            TokenizerKind::Spm => {
                let mut is_prev_special = true;
                let mut buf = String::new();
                for f in &frags {
                    match *f {
                        Fragment::Text(s, e) => {
                            buf.clear();
                            if self.add_space_prefix && is_prev_special {
                                buf.push(' ');
                            }
                            buf.push_str(&text[s..e]);
                            let escaped = buf.replace(' ', "\u{2581}");
                            spm::tokenize(&self.vocab, &escaped, &mut out);
                            is_prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            is_prev_special = true;
                        }
                    }
                }
            }
            TokenizerKind::Bpe => {
                if let Some(b) = &self.bpe {
                    for f in &frags {
                        match *f {
                            Fragment::Text(s, e) => b.tokenize(&self.vocab, &text[s..e], &mut out),
                            Fragment::Token(id) => out.push(id),
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// llama.cpp's `tokenizer_st_partition`: for each special token, longest first, split every
    /// remaining text fragment at each of its occurrences (without `parse_special`, only
    /// user-defined tokens).
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut found = HashSet::new();
        self.special_trie.occurring(text.as_bytes(), &mut found);
        let skip = if parse_special {
            0
        } else {
            attr::CONTROL | attr::UNKNOWN
        };
        let mut cands: Vec<u32> = found
            .into_iter()
            .filter(|&id| self.vocab.attrs[id as usize] & skip == 0)
            .collect();
        cands.sort_by_key(|id| self.special_rank.get(id).copied().unwrap_or(usize::MAX));

        let mut frags = vec![Fragment::Text(0, text.len())];
        for id in cands {
            let pat = self.vocab.tokens[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Fragment::Text(s, e) => {
                        let mut last = s;
                        for (i, _) in text[s..e].match_indices(pat) {
                            let m = s + i;
                            if m > last {
                                next.push(Fragment::Text(last, m));
                            }
                            next.push(Fragment::Token(id));
                            last = m + pat.len();
                        }
                        if last < e {
                            next.push(Fragment::Text(last, e));
                        }
                    }
                    tok => next.push(tok),
                }
            }
            frags = next;
        }
        frags
    }

    /// The bytes of a token as llama.cpp's `token_to_piece(special = true)` gives them: control
    /// tokens as their text, byte tokens as one byte, `▁` (SPM) or GPT-2 byte characters (BPE)
    /// turned back into bytes. Empty for an id outside the vocabulary.
    pub fn token_piece_bytes(&self, id: u32) -> Vec<u8> {
        self.piece(id).to_vec()
    }

    /// Borrowed form of [`Tokenizer::token_piece_bytes`].
    pub fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.piece_off.get(i), self.piece_off.get(i + 1)) {
            (Some(&s), Some(&e)) => self.piece_data.get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The bytes a token contributes to normal output (`token_to_piece(special = false)`):
    /// nothing for control and unknown tokens (BOS, EOS, `<|im_end|>`, ...).
    pub fn output_bytes(&self, id: u32) -> &[u8] {
        match self.vocab.attrs.get(id as usize) {
            Some(a) if a & (attr::CONTROL | attr::UNKNOWN) == 0 => self.piece(id),
            _ => &[],
        }
    }

    /// Decode ids to text: the concatenated output bytes of the tokens, invalid UTF-8 replaced
    /// by U+FFFD. Control tokens decode to nothing; no space is stripped or cleaned up (this is
    /// what streaming the tokens one by one prints).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.output_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A streaming decoder over this tokenizer.
    pub fn detokenizer(&self) -> Detokenizer<'_> {
        Detokenizer::new(self)
    }

    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.tokens.len()
    }

    /// The token's text as stored in the GGUF.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(String::as_str)
    }

    /// Attribute bits of a token (see [`attr`]); `None` outside the vocabulary.
    pub fn token_attr(&self, id: u32) -> Option<u8> {
        self.vocab.attrs.get(id as usize).copied()
    }

    /// Id of a token with exactly this text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.get(text)
    }

    pub fn is_control(&self, id: u32) -> bool {
        self.token_attr(id).is_some_and(|a| a & attr::CONTROL != 0)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }

    pub fn eom_id(&self) -> Option<u32> {
        self.eom
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.vocab.unk_id
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// Whether `encode(.., add_special = true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// The `tokenizer.ggml.pre` name this tokenizer follows: the GGUF's (even an unknown one,
    /// see [`Tokenizer::warning`]), `default` when it has none, `gemma4` for Gemma 4's model.
    /// `None` for SentencePiece vocabularies, which have no pre-tokenizer.
    pub fn pre_tokenizer(&self) -> Option<&str> {
        self.pre_name.as_deref()
    }

    /// A one-line warning about the pre-tokenizer, for the user: an unknown `tokenizer.ggml.pre`
    /// (GPT-2's rules are used, so text may tokenize differently from llama.cpp, which refuses
    /// such a model), or none at all (`default` is used, as llama.cpp does, and warns too).
    /// `None` when the GGUF names a pre-tokenizer llama.cpp knows.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// End-of-generation: EOS, EOT, EOM and the tokens llama.cpp treats as such by their text
    /// (`<|im_end|>`, `<end_of_turn>`, `<|endoftext|>`, `<|eot_id|>`, FIM pad/repo/sep, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.eog.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// Number of tokens recognised when written literally in the text.
    pub fn n_special(&self) -> usize {
        self.special_order.len()
    }
}

/// Streaming decoder: feed tokens one at a time, get back only complete UTF-8 characters.
///
/// A byte-fallback token can hold part of a character; those bytes wait until the character is
/// complete. Invalid sequences become U+FFFD exactly where [`String::from_utf8_lossy`] would put
/// them, so the concatenation of everything returned (including [`Detokenizer::flush`]) equals
/// [`Tokenizer::decode`] of the same ids.
pub struct Detokenizer<'a> {
    tok: &'a Tokenizer,
    pending: Vec<u8>,
}

impl<'a> Detokenizer<'a> {
    pub fn new(tok: &'a Tokenizer) -> Self {
        Detokenizer {
            tok,
            pending: Vec::new(),
        }
    }

    /// Add one token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        self.pending.extend_from_slice(self.tok.output_bytes(id));
        take_utf8(&mut self.pending)
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// End of stream: whatever is held back, with U+FFFD for an unfinished character.
    pub fn flush(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

/// Take the complete UTF-8 characters from the front of `pending` (invalid sequences become
/// U+FFFD exactly where [`String::from_utf8_lossy`] would put them); an incomplete character at
/// the end stays in `pending`.
pub fn take_utf8(pending: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut consumed = 0;
    loop {
        match std::str::from_utf8(&pending[consumed..]) {
            Ok(s) => {
                out.push_str(s);
                consumed = pending.len();
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // The prefix is valid UTF-8 by the error's contract.
                out.push_str(&String::from_utf8_lossy(
                    &pending[consumed..consumed + valid],
                ));
                consumed += valid;
                match e.error_len() {
                    Some(bad) => {
                        out.push('\u{FFFD}');
                        consumed += bad;
                    }
                    // An incomplete character at the end: wait for more bytes.
                    None => break,
                }
            }
        }
    }
    pending.drain(..consumed);
    out
}

#[cfg(test)]
mod tests;
