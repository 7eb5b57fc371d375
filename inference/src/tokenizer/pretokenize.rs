//! Pre-tokenizers of BPE vocabularies, as llama.cpp runs them (`unicode_regex_split`); which
//! regexes a `tokenizer.ggml.pre` name selects is in [`super::pre_table`].
//!
//! A pre-tokenizer is a list of regexes applied one after the other: each splits every piece
//! from the previous one into its matches and the text between them (kept as pieces too).
//!
//! llama.cpp runs the most common regexes (GPT-2, Llama 3, Qwen2, Qwen3.5, Kimi-K2, AFMoE's
//! digits, newlines) through hand-written splitters, chosen by the exact regex text; they are
//! reproduced here ([`Step`]) with llama.cpp's own Unicode classes ([`super::unicode`]). Every
//! other regex goes through `std::regex` there, on "collapsed" text (each non-ASCII code point
//! replaced by a stand-in for its class, `\p{L}` etc. rewritten to match those stand-ins) when it
//! uses `\p{..}`, else on the code points with non-ASCII whitespace turned into `\v`. The same is
//! done here with fancy-regex, which agrees with ECMAScript on these patterns (leftmost match,
//! ordered alternation, greedy backtracking, lookaheads). One consequence, kept on purpose:
//! `\p{Lu}`, `\p{Ll}`, ... all mean "letter" for non-ASCII text, exactly as in llama.cpp.

use std::ops::Range;

use fancy_regex::Regex;

use super::pre_table::{
    AFMOE_DIGITS, GPT2, KIMI_K2, LLAMA3, NEWLINES, QWEN2, QWEN35, TINY_AYA_DIGITS,
};
use super::unicode::{self, Flags};
use crate::error::{Error, Result};

// --- splitting --------------------------------------------------------------------------------

/// One regex of a pre-tokenizer: a hand-written splitter where llama.cpp has one, else a regex.
enum Step {
    Gpt2,
    /// Llama 3 (`max_digits` 3), Qwen2 (1) and Qwen3.5 (1, combining marks join words).
    Words {
        max_digits: usize,
        marks: bool,
    },
    KimiK2,
    /// Digit runs cut into groups of three from the right (AFMoE, Tiny Aya).
    DigitGroups,
    Newlines,
    Regex {
        re: Regex,
        collapsed: bool,
    },
}

impl Step {
    fn new(pattern: &str) -> Result<Step> {
        Ok(match pattern {
            GPT2 => Step::Gpt2,
            LLAMA3 => Step::Words {
                max_digits: 3,
                marks: false,
            },
            QWEN2 => Step::Words {
                max_digits: 1,
                marks: false,
            },
            QWEN35 => Step::Words {
                max_digits: 1,
                marks: true,
            },
            KIMI_K2 => Step::KimiK2,
            AFMOE_DIGITS | TINY_AYA_DIGITS => Step::DigitGroups,
            NEWLINES => Step::Newlines,
            _ => {
                let collapsed = uses_categories(pattern);
                let re = Regex::new(&translate(pattern, collapsed)?).map_err(|e| {
                    Error::Tokenizer(format!("pre-tokenizer regex {pattern:?}: {e}"))
                })?;
                Step::Regex { re, collapsed }
            }
        })
    }

    /// Append the ends (char indices, relative to `t`) of the pieces `t` splits into.
    fn split(&self, t: &Chars<'_>, ends: &mut Vec<usize>) {
        match self {
            Step::Gpt2 => each_match(t, ends, gpt2_match),
            Step::Words { max_digits, marks } => {
                each_match(t, ends, |t, pos| words_match(t, pos, *max_digits, *marks))
            }
            Step::KimiK2 => each_match(t, ends, kimi_k2_match),
            Step::DigitGroups => digit_groups(t, ends),
            Step::Newlines => each_match(t, ends, |t, pos| {
                let nl = t.c(pos) == Some('\n');
                t.run_chars(pos, |c| (c == '\n') == nl)
            }),
            Step::Regex { re, collapsed } => regex_split(re, *collapsed, t, ends),
        }
    }
}

/// Whether llama.cpp runs this regex on collapsed text (it names a `\p{..}` class it collapses).
fn uses_categories(pattern: &str) -> bool {
    ["N", "L", "P", "M", "S", "Lu", "Ll", "Lt", "Lm", "Lo"]
        .iter()
        .any(|c| pattern.contains(&format!(r"\p{{{c}}}")))
}

/// Rewrite an ECMAScript regex of the table for fancy-regex over collapsed or plain text:
/// `\p{..}` become classes of stand-ins and ASCII members, `\d` is ASCII only, and inside a
/// bracket expression a `[` is literal.
fn translate(pattern: &str, collapsed: bool) -> Result<String> {
    let bad = |what: String| Error::Tokenizer(format!("pre-tokenizer regex {pattern:?}: {what}"));
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next().ok_or_else(|| bad("ends in `\\`".into()))?;
                let name = if e == 'p' && chars.peek() == Some(&'{') {
                    let name: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                    Some(name)
                } else {
                    None
                };
                translate_escape(e, name.as_deref(), collapsed, in_class, &mut out).map_err(bad)?;
            }
            '[' if in_class => out.push_str(r"\["),
            '[' => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            // Set operators in Rust classes (`&&`, `~~`), literal in ECMAScript.
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// One escape `\e` (`\p{name}` when `name` is given) of [`translate`].
fn translate_escape(
    e: char,
    name: Option<&str>,
    collapsed: bool,
    in_class: bool,
    out: &mut String,
) -> std::result::Result<(), String> {
    let (class, bracket) = match (e, name) {
        ('p', Some(name)) => {
            let class = unicode::collapsed_class(name)
                .filter(|_| collapsed)
                .ok_or_else(|| format!(r"unsupported class \p{{{name}}}"))?;
            (class, !in_class)
        }
        ('d', _) => ("0-9".to_owned(), !in_class),
        _ => (format!("\\{e}"), false),
    };
    if bracket {
        out.push('[');
        out.push_str(&class);
        out.push(']');
    } else {
        out.push_str(&class);
    }
    Ok(())
}

/// The characters of one piece, with llama.cpp's flags; positions past the end read as "none".
struct Chars<'a> {
    cs: &'a [char],
    fl: &'a [Flags],
}

impl Chars<'_> {
    fn len(&self) -> usize {
        self.cs.len()
    }
    fn c(&self, i: usize) -> Option<char> {
        self.cs.get(i).copied()
    }
    fn f(&self, i: usize) -> Flags {
        self.fl.get(i).copied().unwrap_or(Flags::NONE)
    }
    /// End of the run from `i` of characters whose flags satisfy `p`.
    fn run(&self, i: usize, p: impl Fn(Flags) -> bool) -> usize {
        i + self
            .fl
            .get(i..)
            .map_or(0, |s| s.iter().take_while(|&&f| p(f)).count())
    }
    fn run_chars(&self, i: usize, p: impl Fn(char) -> bool) -> usize {
        i + self
            .cs
            .get(i..)
            .map_or(0, |s| s.iter().take_while(|&&c| p(c)).count())
    }
    /// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (ASCII case folded when `fold`): its length.
    fn contraction(&self, i: usize, fold: bool) -> Option<usize> {
        if self.c(i) != Some('\'') || i + 1 >= self.len() {
            return None;
        }
        let low = |j: usize| {
            self.c(j)
                .map(|c| if fold { c.to_ascii_lowercase() } else { c })
        };
        match low(i + 1) {
            Some('s' | 't' | 'm' | 'd') => Some(2),
            Some(a @ ('r' | 'v' | 'l')) if i + 2 < self.len() => {
                let b = low(i + 2);
                let ok = matches!(
                    (a, b),
                    ('r', Some('e')) | ('v', Some('e')) | ('l', Some('l'))
                );
                ok.then_some(3)
            }
            _ => None,
        }
    }
    /// The whitespace alternatives `\s*[\r\n]+|\s+(?!\S)|\s+` at `i` (`newlines`: with the
    /// first one): the end of the match, or `i + 1` when nothing matches.
    fn whitespace(&self, i: usize, newlines: bool) -> usize {
        let end = self.run(i, Flags::is_whitespace);
        if newlines {
            if let Some(k) = self.cs[i..end]
                .iter()
                .rposition(|&c| c == '\r' || c == '\n')
            {
                return i + k + 1;
            }
        }
        let n = end - i;
        if n > 1 && end < self.len() {
            end - 1
        } else if n > 0 {
            end
        } else {
            i + 1
        }
    }
}

/// Split `t` into consecutive matches of `m` (which returns the end of the match at a position).
fn each_match(t: &Chars<'_>, ends: &mut Vec<usize>, m: impl Fn(&Chars<'_>, usize) -> usize) {
    let mut pos = 0;
    while pos < t.len() {
        pos = m(t, pos).clamp(pos + 1, t.len());
        ends.push(pos);
    }
}

fn is_other(f: Flags) -> bool {
    f.is_some() && !(f.is_whitespace() || f.is_letter() || f.is_number())
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2_match(t: &Chars<'_>, pos: usize) -> usize {
    if let Some(n) = t.contraction(pos, false) {
        return pos + n;
    }
    let start = pos + usize::from(t.c(pos) == Some(' '));
    let f = t.f(start);
    for class in [Flags::is_letter, Flags::is_number, is_other] {
        if class(f) {
            return t.run(start, class);
        }
    }
    t.whitespace(pos, false)
}

/// Llama 3 / Qwen2 / Qwen3.5:
/// `(?i:'s|..)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// (Qwen: `\p{N}`; Qwen3.5: `[\p{L}\p{M}]` for `\p{L}`).
fn words_match(t: &Chars<'_>, pos: usize, max_digits: usize, marks: bool) -> usize {
    if let Some(n) = t.contraction(pos, true) {
        return pos + n;
    }
    let (c, f) = (t.c(pos), t.f(pos));
    let word = |f: Flags| f.is_letter() || (marks && f.is_mark());
    let newline = matches!(c, Some('\r' | '\n'));
    if !(newline || f.is_number()) && (word(f) || word(t.f(pos + 1))) {
        return t.run(pos + 1, word);
    }
    if f.is_number() {
        return t.run(pos, Flags::is_number).min(pos + max_digits);
    }
    let start = pos + usize::from(c == Some(' '));
    let other = |f: Flags| f.is_some() && !(f.is_whitespace() || word(f) || f.is_number());
    // llama.cpp tests the first character's flags here, not the one after the space.
    let f2 = t.f(start);
    if f.is_some() && !(f2.is_whitespace() || word(f2) || f2.is_number()) {
        let end = t.run(start, other);
        return t.run_chars(end, |c| c == '\r' || c == '\n');
    }
    t.whitespace(pos, true)
}

/// Kimi-K2 (llama.cpp's hand-written version of its regex: Han runs, then Llama-3-like words
/// that stop at Han characters, with an optional contraction after the letters).
fn kimi_k2_match(t: &Chars<'_>, pos: usize) -> usize {
    let han = |i: usize| t.c(i).is_some_and(unicode::is_han);
    let letter = |i: usize| t.f(i).is_letter() && !han(i);
    let (c, f) = (t.c(pos), t.f(pos));
    if han(pos) {
        return (pos..).find(|&i| !han(i)).unwrap_or(pos + 1);
    }
    let lead = !(matches!(c, Some('\r' | '\n')) || f.is_letter() || f.is_number());
    if letter(pos) || (lead && letter(pos + 1)) {
        let mut end = pos + usize::from(lead);
        while letter(end) {
            end += 1;
        }
        return end + t.contraction(end, true).unwrap_or(0);
    }
    if f.is_number() {
        return t.run(pos, Flags::is_number).min(pos + 3);
    }
    let start = pos + usize::from(c == Some(' '));
    if is_other(t.f(start)) {
        let end = t.run(start, is_other);
        return t.run_chars(end, |c| c == '\r' || c == '\n');
    }
    t.whitespace(pos, true)
}

/// llama.cpp's AFMoE digit splitter: each digit run is cut into a leading group of one or two
/// digits (its length modulo 3) and groups of three. Text before a run is not cut off: it stays
/// in the same piece as the run's first group, exactly as llama.cpp does.
fn digit_groups(t: &Chars<'_>, ends: &mut Vec<usize>) {
    let mut prev = 0;
    let mut emit = |end: usize, ends: &mut Vec<usize>| {
        if end > prev {
            ends.push(end);
            prev = end;
        }
    };
    let mut pos = 0;
    while pos < t.len() {
        if !t.f(pos).is_number() {
            pos += 1;
            continue;
        }
        let run_end = t.run(pos, Flags::is_number);
        let mut cur = pos + (run_end - pos) % 3;
        emit(cur, ends);
        while cur < run_end {
            cur += 3;
            emit(cur, ends);
        }
        pos = run_end;
    }
    emit(t.len(), ends);
}

/// A regex llama.cpp has no hand-written splitter for, over collapsed or plain text. An empty
/// match (only lookahead-only patterns such as SuperBPE's produce them) cuts the text there.
fn regex_split(re: &Regex, collapsed: bool, t: &Chars<'_>, ends: &mut Vec<usize>) {
    let map = if collapsed {
        unicode::collapse
    } else {
        unicode::plain
    };
    let mut text = String::with_capacity(t.len() * 2);
    let mut starts = Vec::with_capacity(t.len() + 1);
    for &c in t.cs {
        starts.push(text.len());
        text.push(map(c));
    }
    starts.push(text.len());
    let char_at = |byte: usize| starts.partition_point(|&s| s < byte);
    let mut last = 0;
    let mut cut = |end: usize| {
        if end > last {
            ends.push(end);
            last = end;
        }
    };
    let mut pos = 0;
    while pos <= text.len() {
        // An error (fancy-regex's backtracking limit) leaves the rest as one piece.
        let Ok(Some(m)) = re.find_from_pos(&text, pos) else {
            break;
        };
        cut(char_at(m.start()));
        cut(char_at(m.end()));
        pos = if m.end() > m.start() {
            m.end()
        } else {
            m.end() + text[m.end()..].chars().next().map_or(1, char::len_utf8)
        };
    }
    cut(t.len());
}

/// A compiled pre-tokenizer.
pub(crate) struct PreTokenizer {
    steps: Vec<Step>,
}

impl PreTokenizer {
    pub(crate) fn new(regexes: &[&str]) -> Result<PreTokenizer> {
        let steps = regexes
            .iter()
            .map(|r| Step::new(r))
            .collect::<Result<_>>()?;
        Ok(PreTokenizer { steps })
    }

    /// Split `text` into pieces (slices of it, in order, covering all of it).
    pub(crate) fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut offs: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        offs.push(text.len());
        let cs: Vec<char> = text.chars().collect();
        let fl: Vec<Flags> = cs.iter().map(|&c| Flags::of(c)).collect();
        let mut pieces: Vec<Range<usize>> = Vec::new();
        if !cs.is_empty() {
            pieces.push(0..cs.len());
        }
        let mut ends = Vec::new();
        for step in &self.steps {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for r in pieces {
                ends.clear();
                let t = Chars {
                    cs: &cs[r.clone()],
                    fl: &fl[r.clone()],
                };
                step.split(&t, &mut ends);
                let mut start = r.start;
                for &e in &ends {
                    next.push(start..r.start + e);
                    start = r.start + e;
                }
            }
            pieces = next;
        }
        pieces
            .into_iter()
            .map(|r| &text[offs[r.start]..offs[r.end]])
            .collect()
    }
}
