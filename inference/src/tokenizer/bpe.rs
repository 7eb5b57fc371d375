//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`), as llama.cpp's `llm_tokenizer_bpe_session`.
//!
//! 1. Pre-tokenize with the regexes llama.cpp picks from `tokenizer.ggml.pre`
//!    ([`super::pretokenize`]).
//! 2. Each piece's bytes are mapped to GPT-2's printable byte characters (`Ġ` for a space, ...),
//!    except for SentencePiece-style BPE vocabularies (Gemma 4), whose tokens are raw UTF-8 with
//!    `▁` for a space.
//! 3. Merge: start from single characters and repeatedly merge the adjacent pair with the lowest
//!    merge rank (ties: leftmost); emit each symbol's token.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::pre_table::PreSpec;
use super::pretokenize::PreTokenizer;
use super::Vocab;
use crate::error::Result;

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
    pre: PreTokenizer,
    spec: PreSpec,
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
    pub(crate) fn new(spec: PreSpec, merges: &[String]) -> Result<Bpe> {
        let pre = PreTokenizer::new(spec.regexes)?;
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
            pre,
            spec,
            part_id,
            ranks,
            byte_enc,
            byte_dec,
        })
    }

    pub(crate) fn spec(&self) -> &PreSpec {
        &self.spec
    }

    /// A normal token's bytes: `▁` back to a space for SentencePiece-style vocabularies, else
    /// llama.cpp's `llama_decode_text` (GPT-2 byte characters back to bytes).
    pub(crate) fn decode_token_text(&self, text: &str, out: &mut Vec<u8>) {
        if self.spec.escape_spaces {
            out.extend_from_slice(text.replace('\u{2581}', " ").as_bytes());
            return;
        }
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

    pub(crate) fn tokenize(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let escaped;
        let text = if self.spec.escape_spaces {
            escaped = text.replace(' ', "\u{2581}");
            escaped.as_str()
        } else {
            text
        };
        let mut enc = String::new();
        for word in self.pre.split(text) {
            let word = if self.spec.byte_encode {
                enc.clear();
                enc.extend(word.bytes().map(|b| self.byte_enc[b as usize]));
                enc.as_str()
            } else {
                word
            };
            self.merge_word(vocab, word, out);
        }
    }

    /// A word emitted as one token without merging, as llama.cpp does with `ignore_merges`
    /// and for Gemma 4's newline runs.
    fn whole_word(&self, vocab: &Vocab, word: &str) -> Option<u32> {
        let newlines = self.spec.newline_words && word.bytes().all(|b| b == b'\n');
        if self.spec.ignore_merges || newlines {
            vocab.get(word)
        } else {
            None
        }
    }

    fn merge_word(&self, vocab: &Vocab, word: &str, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if let Some(id) = self.whole_word(vocab, word) {
            out.push(id);
            return;
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
                None => self.bytes_fallback(vocab, piece, out),
            }
        }
    }

    /// A merged symbol that is no token: llama.cpp looks each byte up as a one-byte token (`<0xXX>`
    /// for SentencePiece-style vocabularies) and drops those that are absent.
    fn bytes_fallback(&self, vocab: &Vocab, piece: &str, out: &mut Vec<u32>) {
        for &b in piece.as_bytes() {
            let id = if self.spec.byte_encode {
                std::str::from_utf8(&[b]).ok().and_then(|t| vocab.get(t))
            } else {
                vocab.get(&format!("<0x{b:02X}>"))
            };
            out.extend(id);
        }
    }
}
