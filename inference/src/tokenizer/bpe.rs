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

/// "No symbol" / "no part" in the u32 links below.
const NONE: u32 = u32::MAX;

/// One symbol of a word being merged: a linked list over the word's characters. 20 bytes, and a
/// queued merge 16 (they were 56 and 32): with at most ~2 queued merges per character a word
/// costs ~52 bytes of memory per character, linear, whatever its length.
#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
    part: u32,
}

/// Words are merged in pieces of at most this many bytes (u32 offsets); a "word" of 4 GB
/// is not text.
const MAX_WORD: usize = u32::MAX as usize / 2;

/// A candidate merge; ordered by (rank, left), so the min-heap pops the lowest rank and, on
/// ties, the leftmost pair (as the tuple `(rank, l, r, size)` did before).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Merge {
    rank: u32,
    left: u32,
    right: u32,
    size: u32,
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
        let mut rest = word;
        while rest.len() > MAX_WORD {
            let mut cut = MAX_WORD;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            self.merge_piece(vocab, &rest[..cut], out);
            rest = &rest[cut..];
        }
        self.merge_piece(vocab, rest, out);
    }

    /// The part id of `word[start..start + len]`, or NONE.
    fn part(&self, word: &str, start: u32, len: u32) -> u32 {
        let (s, e) = (start as usize, start as usize + len as usize);
        self.part_id.get(&word[s..e]).copied().unwrap_or(NONE)
    }

    /// Queue the merge of symbols `l` and `r` when both exist and their pair has a rank.
    fn queue(&self, symbols: &[Symbol], l: u32, r: u32, q: &mut BinaryHeap<Reverse<Merge>>) {
        if l == NONE || r == NONE {
            return;
        }
        let (ls, rs) = (symbols[l as usize], symbols[r as usize]);
        if ls.part == NONE || rs.part == NONE {
            return;
        }
        if let Some(&rank) = self.ranks.get(&(ls.part, rs.part)) {
            q.push(Reverse(Merge {
                rank,
                left: l,
                right: r,
                size: ls.len + rs.len,
            }));
        }
    }

    /// `word` (< 2 GB) merged, llama.cpp's way: a linked list of symbols and a min-heap of
    /// candidate merges, lowest rank first and leftmost on ties; O(n log n).
    fn merge_piece(&self, vocab: &Vocab, word: &str, out: &mut Vec<u32>) {
        let n_chars = word.chars().count();
        let mut symbols: Vec<Symbol> = Vec::with_capacity(n_chars);
        for (i, (start, c)) in word.char_indices().enumerate() {
            let (start, len) = (start as u32, c.len_utf8() as u32);
            symbols.push(Symbol {
                start,
                len,
                prev: if i == 0 { NONE } else { i as u32 - 1 },
                next: if i + 1 < n_chars { i as u32 + 1 } else { NONE },
                part: self.part(word, start, len),
            });
        }

        let mut queue = BinaryHeap::with_capacity(n_chars);
        for i in 1..symbols.len() as u32 {
            self.queue(&symbols, i - 1, i, &mut queue);
        }
        while let Some(Reverse(m)) = queue.pop() {
            let (ls, rs) = (symbols[m.left as usize], symbols[m.right as usize]);
            // Stale: one side was merged away or grew since this merge was queued.
            if ls.len == 0 || rs.len == 0 || ls.len + rs.len != m.size {
                continue;
            }
            let l = m.left as usize;
            symbols[l].len = m.size;
            symbols[l].part = self.part(word, ls.start, m.size);
            symbols[m.right as usize].len = 0;
            symbols[l].next = rs.next;
            if rs.next != NONE {
                symbols[rs.next as usize].prev = m.left;
            }
            self.queue(&symbols, symbols[l].prev, m.left, &mut queue);
            self.queue(&symbols, m.left, symbols[l].next, &mut queue);
        }

        let mut i = 0u32;
        while i != NONE {
            let s = symbols[i as usize];
            i = s.next;
            let piece = &word[s.start as usize..(s.start + s.len) as usize];
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
