//! SentencePiece-style tokenization (`tokenizer.ggml.model = "llama"`), as llama.cpp's
//! `llm_tokenizer_spm_session`: start from single UTF-8 characters, repeatedly merge the adjacent
//! pair whose concatenation is the vocabulary token with the highest score (ties: leftmost), then
//! emit each symbol's token, or its bytes as `<0xXX>` tokens when it is not in the vocabulary.
//!
//! The caller has already added the space prefix and replaced spaces by `▁` (U+2581).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Vocab;

#[derive(Clone, Copy)]
struct Symbol {
    /// Byte offset in the text.
    start: usize,
    /// Byte length; 0 once merged into its left neighbour.
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: highest score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

fn try_add_bigram(
    vocab: &Vocab,
    text: &str,
    symbols: &[Symbol],
    left: Option<usize>,
    right: Option<usize>,
    queue: &mut BinaryHeap<Bigram>,
) {
    let (Some(l), Some(r)) = (left, right) else {
        return;
    };
    let (ls, rs) = (symbols[l], symbols[r]);
    let size = ls.len + rs.len;
    let Some(piece) = text.get(ls.start..ls.start + size) else {
        return;
    };
    if let Some(id) = vocab.get(piece) {
        let score = vocab.scores.get(id as usize).copied().unwrap_or(0.0);
        queue.push(Bigram {
            left: l,
            right: r,
            score,
            size,
        });
    }
}

pub(crate) fn tokenize(vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    let n_chars = text.chars().count();
    let mut symbols: Vec<Symbol> = Vec::with_capacity(n_chars);
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: if i + 1 < n_chars { Some(i + 1) } else { None },
        });
    }

    let mut queue = BinaryHeap::with_capacity(symbols.len());
    for i in 1..symbols.len() {
        try_add_bigram(vocab, text, &symbols, Some(i - 1), Some(i), &mut queue);
    }

    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left], symbols[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        symbols[b.left].len += r.len;
        symbols[b.right].len = 0;
        symbols[b.left].next = r.next;
        if let Some(nx) = r.next {
            symbols[nx].prev = Some(b.left);
        }
        let prev = symbols[b.left].prev;
        let next = symbols[b.left].next;
        try_add_bigram(vocab, text, &symbols, prev, Some(b.left), &mut queue);
        try_add_bigram(vocab, text, &symbols, Some(b.left), next, &mut queue);
    }

    let mut i = Some(0usize);
    while let Some(idx) = i {
        let s = symbols[idx];
        i = s.next;
        let Some(piece) = text.get(s.start..s.start + s.len) else {
            continue;
        };
        match vocab.get(piece) {
            Some(id) => out.push(id),
            None => {
                // A merged symbol is always a vocabulary token, so only single characters land
                // here: byte fallback.
                for &b in piece.as_bytes() {
                    if let Some(id) = vocab.byte_to_token(b) {
                        out.push(id);
                    }
                }
            }
        }
    }
}
