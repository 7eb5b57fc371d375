//! The incremental matcher: a pushdown automaton over code points, like llama.cpp's
//! `llama_grammar` — the state is a set of stacks of positions in rule alternatives; a code
//! point advances every stack whose top element accepts it.
//!
//! Speed: each distinct stack set is interned as a state id and every (state, code point)
//! transition is cached, so the mask is one walk of the vocabulary's trie with one hash lookup
//! per node; the mask of a state is cached too (inside a JSON string the state after each
//! character is the same one, so most steps cost a lookup).

use std::collections::HashMap;
use std::sync::Arc;

use super::gbnf::{Elem, Grammar};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// Most stacks one state may hold (ambiguous grammars multiply them); extra ones are dropped.
pub const MAX_STACKS: usize = 512;
/// Deepest stack (nesting of rules not yet finished).
pub const MAX_STACK_DEPTH: usize = 512;
/// Caches are emptied between tokens once they hold this many states / transitions.
const MAX_STATES: usize = 20_000;
const MAX_TRANSITIONS: usize = 4_000_000;

const DEAD: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Pos {
    rule: u32,
    alt: u32,
    idx: u32,
}

/// Top of the stack = the next element to match; an empty stack = the root rule is complete.
type Stack = Vec<Pos>;

/// A trie node of the vocabulary's code points.
#[derive(Default)]
struct Node {
    children: Vec<(u32, u32)>,
    /// Tokens whose code points end exactly here.
    tokens: Vec<u32>,
    /// Tokens ending here plus an incomplete UTF-8 character that may complete to `lo..=hi`.
    partial: Vec<(u32, u32, u32)>,
}

/// The vocabulary as the matcher sees it, computed once per tokenizer: each usable token's
/// bytes and a trie of their code points. Control tokens never match text; end-of-generation
/// tokens are allowed only where the grammar can end.
pub struct TokenTable {
    n_vocab: usize,
    nodes: Vec<Node>,
    /// Output bytes of every token (empty: never allowed as text).
    bytes: Vec<Vec<u8>>,
    eog: Vec<u32>,
}

impl TokenTable {
    pub fn new(tok: &Tokenizer) -> TokenTable {
        let n_vocab = tok.vocab_size();
        let mut t = TokenTable {
            n_vocab,
            nodes: vec![Node::default()],
            bytes: Vec::with_capacity(n_vocab),
            eog: tok.eog_ids(),
        };
        for id in 0..n_vocab as u32 {
            let b = if tok.is_control(id) {
                &[][..]
            } else {
                tok.output_bytes(id)
            };
            t.bytes.push(b.to_vec());
            if !b.is_empty() {
                t.insert(id);
            }
        }
        t
    }

    fn insert(&mut self, id: u32) {
        // Invalid UTF-8 (or a token starting mid-character) only fits after a pending partial
        // character: the slow path in `Matcher::allowed` handles those.
        let Some((cps, tail)) = split_utf8(&self.bytes[id as usize]) else {
            return;
        };
        let mut node = 0usize;
        for cp in cps {
            node = match self.nodes[node].children.iter().find(|c| c.0 == cp) {
                Some(&(_, n)) => n as usize,
                None => {
                    self.nodes.push(Node::default());
                    let n = self.nodes.len() - 1;
                    self.nodes[node].children.push((cp, n as u32));
                    n
                }
            };
        }
        let tail = &self.bytes[id as usize][tail..];
        match prefix_range(tail) {
            None => self.nodes[node].tokens.push(id),
            Some((lo, hi)) => self.nodes[node].partial.push((id, lo, hi)),
        }
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// An empty vocabulary: for tests that walk text with [`Matcher::accept_str`].
    #[cfg(test)]
    pub(crate) fn bytes_for_tests() -> TokenTable {
        TokenTable {
            n_vocab: 0,
            nodes: vec![Node::default()],
            bytes: Vec::new(),
            eog: Vec::new(),
        }
    }
}

/// Decode complete code points; returns them and where a trailing incomplete (but so far
/// valid) character starts. `None` for invalid UTF-8.
pub fn split_utf8(b: &[u8]) -> Option<(Vec<u32>, usize)> {
    let mut cps = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let n = match b[i] {
            0..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return None,
        };
        if i + n > b.len() {
            return b[i + 1..]
                .iter()
                .all(|c| c & 0xC0 == 0x80)
                .then_some((cps, i));
        }
        let s = std::str::from_utf8(&b[i..i + n]).ok()?;
        cps.push(s.chars().next()? as u32);
        i += n;
    }
    Some((cps, i))
}

/// The code points an incomplete UTF-8 character (lead byte + some continuation bytes) can
/// still become; `None` for an empty tail.
fn prefix_range(tail: &[u8]) -> Option<(u32, u32)> {
    let (&lead, rest) = tail.split_first()?;
    let (n, bits) = match lead {
        0xC0..=0xDF => (2, lead & 0x1F),
        0xE0..=0xEF => (3, lead & 0x0F),
        _ => (4, lead & 0x07),
    };
    let mut v = bits as u32;
    for &c in rest {
        v = (v << 6) | (c & 0x3F) as u32;
    }
    let missing = 6 * (n - tail.len()) as u32;
    // The bits known so far, clamped to what an n-byte sequence may encode (no overlong forms:
    // a lone 0xE0 or 0xF0 lead has zero bits yet can only become U+0800.. or U+10000..).
    let min = match n {
        2 => 0x80,
        3 => 0x800,
        _ => 0x1_0000,
    };
    let lo = (v << missing).max(min);
    let hi = ((v << missing) | ((1u32 << missing) - 1)).min(0x10_FFFF);
    Some(if lo <= hi {
        (lo, hi)
    } else {
        (NO_CHAR, NO_CHAR)
    })
}

/// The range of a partial character that can never become one: matches nothing.
const NO_CHAR: u32 = u32::MAX;

/// Grammar state over one generation: feed it the chosen tokens, ask it which may come next.
pub struct Matcher {
    grammar: Arc<Grammar>,
    table: Arc<TokenTable>,
    states: Vec<Vec<Stack>>,
    ids: HashMap<Vec<Stack>, u32>,
    trans: HashMap<(u32, u32), u32>,
    masks: HashMap<u32, Arc<Vec<u64>>>,
    cur: u32,
    /// Bytes of a character split across tokens, not matched yet.
    pending: Vec<u8>,
}

impl Matcher {
    pub fn new(grammar: Arc<Grammar>, table: Arc<TokenTable>) -> Matcher {
        let mut m = Matcher {
            grammar,
            table,
            states: Vec::new(),
            ids: HashMap::new(),
            trans: HashMap::new(),
            masks: HashMap::new(),
            cur: DEAD,
            pending: Vec::new(),
        };
        m.cur = m.initial();
        m
    }

    fn initial(&mut self) -> u32 {
        let g = self.grammar.clone();
        let mut out = Vec::new();
        let root = g.root;
        for (ai, a) in g.rules[root as usize].iter().enumerate() {
            let s = if a.is_empty() {
                Vec::new()
            } else {
                vec![Pos {
                    rule: root,
                    alt: ai as u32,
                    idx: 0,
                }]
            };
            expand(&g, s, &mut out);
        }
        self.intern(out)
    }

    fn intern(&mut self, mut stacks: Vec<Stack>) -> u32 {
        stacks.sort_unstable();
        stacks.dedup();
        if stacks.is_empty() {
            return DEAD;
        }
        if let Some(&id) = self.ids.get(&stacks) {
            return id;
        }
        let id = self.states.len() as u32;
        self.states.push(stacks.clone());
        self.ids.insert(stacks, id);
        id
    }

    /// The state after code point `cp` (cached).
    fn step(&mut self, state: u32, cp: u32) -> u32 {
        if state == DEAD {
            return DEAD;
        }
        if let Some(&s) = self.trans.get(&(state, cp)) {
            return s;
        }
        let g = self.grammar.clone();
        let mut out = Vec::new();
        for stack in &self.states[state as usize] {
            let Some(&top) = stack.last() else { continue };
            let alt = &g.rules[top.rule as usize][top.alt as usize];
            let Elem::Char(c) = alt[top.idx as usize] else {
                continue;
            };
            if !g.classes[c as usize].matches(cp) {
                continue;
            }
            let mut s = stack.clone();
            s.pop();
            if (top.idx as usize) + 1 < alt.len() {
                s.push(Pos {
                    idx: top.idx + 1,
                    ..top
                });
            }
            expand(&g, s, &mut out);
        }
        let next = self.intern(out);
        self.trans.insert((state, cp), next);
        next
    }

    /// Whether some stack's next character could be one in `lo..=hi`.
    fn accepts_range(&self, state: u32, lo: u32, hi: u32) -> bool {
        if state == DEAD || lo == NO_CHAR {
            return false;
        }
        let g = &self.grammar;
        self.states[state as usize].iter().any(|stack| {
            stack.last().is_some_and(|top| {
                match g.rules[top.rule as usize][top.alt as usize][top.idx as usize] {
                    Elem::Char(c) => g.classes[c as usize].intersects(lo, hi),
                    Elem::Rule(_) => false,
                }
            })
        })
    }

    /// Walk `bytes` (after the pending partial character) from the current state: the new
    /// state and the new pending bytes, or `None` if the grammar rejects them.
    fn walk(&mut self, bytes: &[u8]) -> Option<(u32, Vec<u8>)> {
        let mut all = self.pending.clone();
        all.extend_from_slice(bytes);
        let (cps, tail) = split_utf8(&all)?;
        let mut s = self.cur;
        for cp in cps {
            s = self.step(s, cp);
            if s == DEAD {
                return None;
            }
        }
        let tail = &all[tail..];
        if let Some((lo, hi)) = prefix_range(tail) {
            if !self.accepts_range(s, lo, hi) {
                return None;
            }
        }
        Some((s, tail.to_vec()))
    }

    /// Whether token `id` may come next (one walk of its bytes: much cheaper than
    /// [`Matcher::allowed`] over the vocabulary).
    pub fn allows(&mut self, id: u32) -> bool {
        if self.table.eog.contains(&id) {
            return self.can_end();
        }
        let table = self.table.clone();
        match table.bytes.get(id as usize) {
            Some(b) if !b.is_empty() => self.walk(b).is_some(),
            _ => false,
        }
    }

    /// Advance past the chosen token. Errors if the grammar does not allow it.
    pub fn accept_token(&mut self, id: u32) -> Result<()> {
        self.trim_caches();
        let table = self.table.clone();
        let bytes = table
            .bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if bytes.is_empty() {
            return Err(Error::Grammar(format!(
                "token {id} has no text the grammar could match"
            )));
        }
        let (s, pending) = self
            .walk(bytes)
            .ok_or_else(|| Error::Grammar(format!("token {id} does not fit the grammar here")))?;
        self.cur = s;
        self.pending = pending;
        Ok(())
    }

    /// Advance past text (a prefix already in the output, or for tests).
    pub fn accept_str(&mut self, text: &str) -> Result<()> {
        let (s, pending) = self
            .walk(text.as_bytes())
            .ok_or_else(|| Error::Grammar(format!("text {text:?} does not fit the grammar")))?;
        self.cur = s;
        self.pending = pending;
        Ok(())
    }

    /// Back to the start of the grammar, keeping the caches (for the next generation).
    pub fn reset(&mut self) {
        self.trim_caches();
        self.pending.clear();
        self.cur = self.initial();
    }

    /// The root rule may end here (an end-of-generation token is allowed).
    pub fn can_end(&self) -> bool {
        self.pending.is_empty() && self.states[self.cur as usize].iter().any(Vec::is_empty)
    }

    /// The root rule is complete and nothing more can follow.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.states[self.cur as usize].iter().all(Vec::is_empty)
    }

    /// Which tokens may come next, as a bitset over the vocabulary (bit `id % 64` of word
    /// `id / 64`): text tokens the grammar accepts, plus end-of-generation tokens if it can end.
    pub fn allowed(&mut self) -> Arc<Vec<u64>> {
        if self.pending.is_empty() {
            if let Some(m) = self.masks.get(&self.cur) {
                return m.clone();
            }
        }
        let table = self.table.clone();
        let mut mask = vec![0u64; table.n_vocab.div_ceil(64)];
        let set = |m: &mut Vec<u64>, id: u32| m[id as usize / 64] |= 1 << (id % 64);
        if self.pending.is_empty() {
            self.fill(&table, 0, self.cur, &mut mask);
        } else {
            // A character split across tokens: check every token's bytes after it (rare).
            for id in 0..table.n_vocab as u32 {
                let b = &table.bytes[id as usize];
                if !b.is_empty() && self.walk(b).is_some() {
                    set(&mut mask, id);
                }
            }
        }
        if self.can_end() {
            for &id in &table.eog {
                if (id as usize) < table.n_vocab {
                    set(&mut mask, id);
                }
            }
        }
        let mask = Arc::new(mask);
        if self.pending.is_empty() {
            self.masks.insert(self.cur, mask.clone());
        }
        mask
    }

    fn fill(&mut self, table: &TokenTable, node: usize, state: u32, mask: &mut [u64]) {
        let n = &table.nodes[node];
        for &id in &n.tokens {
            mask[id as usize / 64] |= 1 << (id % 64);
        }
        for &(id, lo, hi) in &n.partial {
            if self.accepts_range(state, lo, hi) {
                mask[id as usize / 64] |= 1 << (id % 64);
            }
        }
        for &(cp, child) in &n.children {
            let s = self.step(state, cp);
            if s != DEAD {
                self.fill(table, child as usize, s, mask);
            }
        }
    }

    /// Keep memory bounded on long generations: drop the caches, keep the current state.
    fn trim_caches(&mut self) {
        if self.states.len() < MAX_STATES && self.trans.len() < MAX_TRANSITIONS {
            return;
        }
        let cur = std::mem::take(&mut self.states[self.cur as usize]);
        self.states.clear();
        self.ids.clear();
        self.trans.clear();
        self.masks.clear();
        self.cur = self.intern(cur);
    }
}

/// Expand rule references at the top of `stack` until every resulting stack's top is a
/// character element (or the stack is empty = complete). Terminates because left recursion is
/// refused when the grammar is built; the caps bound ambiguous grammars.
fn expand(g: &Grammar, mut stack: Stack, out: &mut Vec<Stack>) {
    let Some(&top) = stack.last() else {
        out.push(stack);
        return;
    };
    let alt = &g.rules[top.rule as usize][top.alt as usize];
    match alt[top.idx as usize] {
        Elem::Char(_) => {
            if out.len() < MAX_STACKS {
                out.push(stack);
            }
        }
        Elem::Rule(r) => {
            stack.pop();
            // Tail position: nothing to return to, so right recursion does not grow the stack.
            if (top.idx as usize) + 1 < alt.len() {
                stack.push(Pos {
                    idx: top.idx + 1,
                    ..top
                });
            }
            if stack.len() >= MAX_STACK_DEPTH {
                return;
            }
            for (ai, a) in g.rules[r as usize].iter().enumerate() {
                if out.len() >= MAX_STACKS {
                    return;
                }
                let mut s = stack.clone();
                if !a.is_empty() {
                    s.push(Pos {
                        rule: r,
                        alt: ai as u32,
                        idx: 0,
                    });
                }
                expand(g, s, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn partial_characters_cover_only_what_they_can_become() {
        // A lone 3- or 4-byte lead has no value bits yet, but can only become U+0800.. or
        // U+10000..: never ASCII (a token ending in one was once allowed where "e" had to come).
        assert_eq!(prefix_range(&[0xE0]), Some((0x800, 0xFFF)));
        assert_eq!(prefix_range(&[0xF0]), Some((0x1_0000, 0x3_FFFF)));
        assert_eq!(prefix_range(&[0xC3]), Some((0xC0, 0xFF)));
        assert_eq!(prefix_range(&[0xF4, 0x90]), Some((NO_CHAR, NO_CHAR)));
        assert_eq!(prefix_range(&[]), None);
    }

    use super::*;

    fn g(src: &str) -> Arc<Grammar> {
        Arc::new(super::super::gbnf::parse(src, "root").expect("grammar"))
    }

    fn table(words: &[&[u8]]) -> Arc<TokenTable> {
        let mut t = TokenTable {
            n_vocab: words.len(),
            nodes: vec![Node::default()],
            bytes: words.iter().map(|w| w.to_vec()).collect(),
            eog: vec![],
        };
        for id in 0..words.len() as u32 {
            if !t.bytes[id as usize].is_empty() {
                t.insert(id);
            }
        }
        Arc::new(t)
    }

    fn ids(mask: &[u64], n: usize) -> Vec<u32> {
        (0..n as u32)
            .filter(|&i| mask[i as usize / 64] >> (i % 64) & 1 == 1)
            .collect()
    }

    #[test]
    fn masks_follow_the_grammar() {
        let t = table(&[b"a", b"b", b"ab", b"c", b"abc", b"ba"]);
        let mut m = Matcher::new(g("root ::= \"a\"+ \"b\" \"c\"?"), t);
        assert_eq!(ids(&m.allowed(), 6), vec![0, 2, 4]);
        m.accept_token(0).expect("a");
        assert!(!m.can_end());
        assert_eq!(ids(&m.allowed(), 6), vec![0, 1, 2, 4]);
        m.accept_token(1).expect("b");
        assert!(m.can_end() && !m.is_done());
        assert_eq!(ids(&m.allowed(), 6), vec![3]);
        m.accept_token(3).expect("c");
        assert!(m.is_done());
        assert!(m.accept_token(0).is_err());
    }

    #[test]
    fn characters_split_across_tokens() {
        // "é" = C3 A9, "€" = E2 82 AC.
        let t = table(&[b"\xC3", b"\xA9", b"\xE2", b"\x82\xAC", b"x", b"\xE2\x82"]);
        let mut m = Matcher::new(g(r#"root ::= [\u00e0-\u00ff] "\u20ac""#), t);
        assert_eq!(ids(&m.allowed(), 6), vec![0]);
        m.accept_token(0).expect("lead byte");
        assert_eq!(ids(&m.allowed(), 6), vec![1]);
        m.accept_token(1).expect("é");
        assert_eq!(ids(&m.allowed(), 6), vec![2, 5]);
        m.accept_token(5).expect("E2 82");
        assert!(ids(&m.allowed(), 6).is_empty());
        assert!(
            m.accept_str("\u{20ac}").is_err(),
            "bytes, not the whole character, are pending"
        );
    }

    #[test]
    fn utf8_ranges() {
        assert_eq!(split_utf8(b"a\xC3"), Some((vec![97], 1)));
        assert_eq!(split_utf8(b"\xA9"), None);
        assert_eq!(prefix_range(b"\xE2\x82"), Some((0x2080, 0x20BF)));
    }
}
