//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`), as llama.cpp's `llm_tokenizer_bpe_session`.
//!
//! 1. Pre-tokenize: the regexes llama.cpp picks from `tokenizer.ggml.pre` are applied one after
//!    the other; each splits every piece from the previous one into its matches and the text
//!    between them (which is kept as pieces too).
//! 2. Each piece's bytes are mapped to GPT-2's printable byte characters (`Ġ` for a space, ...).
//! 3. Merge: start from single characters and repeatedly merge the adjacent pair with the lowest
//!    merge rank (ties: leftmost); emit each symbol's token.
//!
//! llama.cpp hand-codes the gpt2 and llama3 patterns (`unicode_regex_split_custom_*`); those
//! hand-written splitters agree with the regex semantics used here (leftmost-first alternation,
//! `\s+(?!\S)` backtracking one whitespace before a non-space).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use fancy_regex::Regex;

use super::Vocab;
use crate::error::{Error, Result};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Pre-tokenizer settings for a `tokenizer.ggml.pre` name (llama.cpp's `llama_vocab::impl::load`
/// and `llm_tokenizer_bpe`).
pub(crate) struct PreTokenizer {
    pub(crate) regexes: &'static [&'static str],
    pub(crate) ignore_merges: bool,
    pub(crate) add_bos: bool,
    pub(crate) no_bos: bool,
}

pub(crate) fn pre_tokenizer(pre: &str) -> PreTokenizer {
    let p = |regexes, ignore_merges, add_bos, no_bos| PreTokenizer {
        regexes,
        ignore_merges,
        add_bos,
        no_bos,
    };
    match pre {
        "default" => p(
            &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
            false,
            false,
            false,
        ),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" => p(&[LLAMA3], true, true, false),
        "dbrx" | "smaug-bpe" => p(&[LLAMA3], false, false, false),
        "glm4" | "chatglm-bpe" => p(&[LLAMA3], false, false, true),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            p(&[r"\p{N}", GPT2], false, false, false)
        }
        "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" | "hunyuan" | "kormo" => {
            p(&[QWEN2], false, false, false)
        }
        "falcon" => p(
            &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
            false,
            false,
            false,
        ),
        // gpt-2, phi-2, mpt, olmo, jais, ... and every pre-tokenizer not implemented here.
        _ => p(&[GPT2], false, false, false),
    }
}

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the rest to U+0100 onwards.
fn byte_encoder() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        let cp = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

pub(crate) struct Bpe {
    regexes: Vec<Regex>,
    ignore_merges: bool,
    pub(crate) default_add_bos: bool,
    pub(crate) no_bos: bool,
    /// Every string that appears as one side of a merge.
    part_id: HashMap<String, u32>,
    /// (left part, right part) -> rank (position in `tokenizer.ggml.merges`).
    ranks: HashMap<(u32, u32), u32>,
    byte_enc: [char; 256],
    byte_dec: HashMap<char, u8>,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
    part: Option<u32>,
}

impl Bpe {
    pub(crate) fn new(pre: &str, merges: &[String]) -> Result<Bpe> {
        let cfg = pre_tokenizer(pre);
        let regexes = cfg
            .regexes
            .iter()
            .map(|r| {
                Regex::new(r)
                    .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex {r:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut part_id: HashMap<String, u32> = HashMap::new();
        let mut ranks = HashMap::with_capacity(merges.len());
        let mut intern = |s: &str| -> u32 {
            if let Some(&id) = part_id.get(s) {
                return id;
            }
            let id = part_id.len() as u32;
            part_id.insert(s.to_owned(), id);
            id
        };
        for (rank, m) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first byte.
            let Some(pos) = m.as_bytes().iter().skip(1).position(|&b| b == b' ') else {
                continue;
            };
            let (first, second) = (&m[..pos + 1], &m[pos + 2..]);
            let key = (intern(first), intern(second));
            ranks.entry(key).or_insert(rank as u32);
        }
        let byte_enc = byte_encoder();
        let byte_dec = byte_enc
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Ok(Bpe {
            regexes,
            ignore_merges: cfg.ignore_merges,
            default_add_bos: cfg.add_bos,
            no_bos: cfg.no_bos,
            part_id,
            ranks,
            byte_enc,
            byte_dec,
        })
    }

    /// llama.cpp's `llama_decode_text`: GPT-2 byte characters back to bytes.
    pub(crate) fn decode_token_text(&self, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            match self.byte_dec.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    out.extend_from_slice(b"[UNK_BYTE_0x");
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.extend_from_slice(format!("{b:02x}").as_bytes());
                    }
                    out.extend_from_slice(text.as_bytes());
                    out.push(b']');
                }
            }
        }
    }

    /// Split into pre-tokenizer pieces (slices of `text`).
    fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut frags = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(frags.len() * 2);
            for f in frags {
                let mut last = 0;
                let mut pos = 0;
                while pos < f.len() {
                    let m = match re.find_from_pos(f, pos) {
                        Ok(Some(m)) => m,
                        // No more matches, or the backtracking limit: the rest stays one piece.
                        Ok(None) | Err(_) => break,
                    };
                    if m.end() == m.start() {
                        // Empty match (none of the patterns here can produce one): step on.
                        pos = m.end() + f[m.end()..].chars().next().map_or(1, char::len_utf8);
                        continue;
                    }
                    if m.start() > last {
                        next.push(&f[last..m.start()]);
                    }
                    next.push(m.as_str());
                    last = m.end();
                    pos = m.end();
                }
                if last < f.len() {
                    next.push(&f[last..]);
                }
            }
            frags = next;
        }
        frags
    }

    pub(crate) fn tokenize(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut enc = String::new();
        for word in self.split(text) {
            enc.clear();
            enc.extend(word.bytes().map(|b| self.byte_enc[b as usize]));
            self.merge_word(vocab, &enc, out);
        }
    }

    fn merge_word(&self, vocab: &Vocab, word: &str, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(id) = vocab.get(word) {
                out.push(id);
                return;
            }
        }
        let n_chars = word.chars().count();
        let mut symbols: Vec<Symbol> = Vec::with_capacity(n_chars);
        for (i, (start, c)) in word.char_indices().enumerate() {
            let len = c.len_utf8();
            symbols.push(Symbol {
                start,
                len,
                prev: i.checked_sub(1),
                next: if i + 1 < n_chars { Some(i + 1) } else { None },
                part: self.part_id.get(&word[start..start + len]).copied(),
            });
        }

        // Min-heap on (rank, left): lowest rank first, then the leftmost pair.
        let mut queue: BinaryHeap<Reverse<(u32, usize, usize, usize)>> = BinaryHeap::new();
        let add =
            |symbols: &[Symbol], l: Option<usize>, r: Option<usize>, q: &mut BinaryHeap<_>| {
                let (Some(l), Some(r)) = (l, r) else { return };
                let (ls, rs) = (symbols[l], symbols[r]);
                if let (Some(a), Some(b)) = (ls.part, rs.part) {
                    if let Some(&rank) = self.ranks.get(&(a, b)) {
                        q.push(Reverse((rank, l, r, ls.len + rs.len)));
                    }
                }
            };
        for i in 1..symbols.len() {
            add(&symbols, Some(i - 1), Some(i), &mut queue);
        }
        while let Some(Reverse((_, l, r, size))) = queue.pop() {
            let (ls, rs) = (symbols[l], symbols[r]);
            if ls.len == 0 || rs.len == 0 || ls.len + rs.len != size {
                continue;
            }
            let merged = &word[ls.start..ls.start + size];
            symbols[l].len = size;
            symbols[l].part = self.part_id.get(merged).copied();
            symbols[r].len = 0;
            symbols[l].next = rs.next;
            if let Some(nx) = rs.next {
                symbols[nx].prev = Some(l);
            }
            add(&symbols, symbols[l].prev, Some(l), &mut queue);
            add(&symbols, Some(l), symbols[l].next, &mut queue);
        }

        let mut i = Some(0usize);
        while let Some(idx) = i {
            let s = symbols[idx];
            i = s.next;
            let piece = &word[s.start..s.start + s.len];
            match vocab.get(piece) {
                Some(id) => out.push(id),
                None => {
                    // llama.cpp: look each byte up as a one-byte token, drop it when absent.
                    for &b in piece.as_bytes() {
                        let one = [b];
                        if let Some(id) = std::str::from_utf8(&one).ok().and_then(|t| vocab.get(t))
                        {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }
}
