//! Code point classes exactly as llama.cpp's `unicode_cpt_flags` sees them (its own Unicode
//! tables, not the regex crate's), so that pre-tokenizers split where llama.cpp splits.
//!
//! Also the "collapsed" text of llama.cpp's `unicode_regex_split`: for regexes that are not
//! hand-coded there, llama.cpp runs `std::regex` over a copy of the text in which every code
//! point above U+007F is replaced by one byte standing for its class, and rewrites `\p{L}`,
//! `\p{N}`, ... as classes of those bytes plus their ASCII members. [`collapse`] does the same
//! with private-use characters in place of the bytes.

use super::unicode_data::{RANGES, WHITESPACE};

/// Category group of a code point (one bit each) plus the whitespace bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u16);

impl Flags {
    pub(crate) const NUMBER: u16 = 0x0002;
    pub(crate) const LETTER: u16 = 0x0004;
    pub(crate) const MARK: u16 = 0x0010;
    pub(crate) const PUNCTUATION: u16 = 0x0020;
    pub(crate) const SYMBOL: u16 = 0x0040;
    const CATEGORIES: u16 = 0x00FF;
    const WHITESPACE: u16 = 0x0100;

    /// The flags of a code point.
    pub(crate) fn of(c: char) -> Flags {
        let cp = c as u32;
        let i = RANGES.partition_point(|&e| (e >> 8) <= cp);
        let cat = i.checked_sub(1).map_or(0, |i| (RANGES[i] & 0xFF) as u16);
        let ws = if is_whitespace(c) {
            Self::WHITESPACE
        } else {
            0
        };
        Flags(cat | ws)
    }

    /// "No character" (a position outside the text): every test is false.
    pub(crate) const NONE: Flags = Flags(0);

    pub(crate) fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    pub(crate) fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    pub(crate) fn is_mark(self) -> bool {
        self.0 & Self::MARK != 0
    }
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    /// A real character (llama.cpp's `as_uint() != 0`): false only outside the text.
    pub(crate) fn is_some(self) -> bool {
        self.0 != 0
    }
    /// The category bits alone (llama.cpp's `category_flag()`).
    pub(crate) fn category(self) -> u16 {
        self.0 & Self::CATEGORIES
    }
}

/// `\s` as llama.cpp tests it (`unicode_set_whitespace`).
pub(crate) fn is_whitespace(c: char) -> bool {
    matches!(c, '\t'..='\r' | ' ')
        || (c as u32 > 0x7F && WHITESPACE.binary_search(&(c as u32)).is_ok())
}

/// llama.cpp's `unicode_cpt_is_han` (the ranges of CJK ideographs Kimi-K2 splits on).
pub(crate) fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0x2CEB0..=0x2EBEF | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// Stand-ins for the classes in collapsed text (llama.cpp uses the bytes 0xD0..=0xD5).
pub(crate) const C_OTHER: char = '\u{E0D0}';
pub(crate) const C_NUMBER: char = '\u{E0D1}';
pub(crate) const C_LETTER: char = '\u{E0D2}';
pub(crate) const C_PUNCTUATION: char = '\u{E0D3}';
pub(crate) const C_MARK: char = '\u{E0D4}';
pub(crate) const C_SYMBOL: char = '\u{E0D5}';

/// One character of llama.cpp's collapsed text: ASCII stays, other whitespace becomes a vertical
/// tab, everything else the stand-in of its class.
pub(crate) fn collapse(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    let f = Flags::of(c);
    if f.is_whitespace() {
        return '\u{0B}';
    }
    match f.category() {
        Flags::NUMBER => C_NUMBER,
        Flags::LETTER => C_LETTER,
        Flags::PUNCTUATION => C_PUNCTUATION,
        Flags::MARK => C_MARK,
        Flags::SYMBOL => C_SYMBOL,
        _ => C_OTHER,
    }
}

/// What llama.cpp's `std::wregex` path sees: non-ASCII whitespace becomes a vertical tab.
pub(crate) fn plain(c: char) -> char {
    if !c.is_ascii() && is_whitespace(c) {
        '\u{0B}'
    } else {
        c
    }
}

/// The class that replaces `\p{..}` in a collapsed regex (llama.cpp's `k_ucat_map`), as the
/// inside of a bracket expression. `None` for a class llama.cpp does not collapse.
pub(crate) fn collapsed_class(name: &str) -> Option<String> {
    let (stand_in, ascii) = match name {
        "N" => (C_NUMBER, "0-9"),
        "L" | "Lu" | "Ll" | "Lt" | "Lm" | "Lo" => (C_LETTER, "A-Za-z"),
        "P" => (C_PUNCTUATION, r"!-#%-*,-/:-;?-@\[-\]_\{\}"),
        "M" => (C_MARK, ""),
        "S" => (C_SYMBOL, r"\$\+<->\^`\|\~"),
        _ => return None,
    };
    Some(format!("{stand_in}{ascii}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_llama_cpp() {
        assert!(Flags::of('a').is_letter() && Flags::of('Ж').is_letter());
        assert!(Flags::of('7').is_number() && Flags::of('٣').is_number());
        assert!(Flags::of('\u{301}').is_mark());
        assert!(Flags::of(' ').is_whitespace() && Flags::of('\u{3000}').is_whitespace());
        assert!(!Flags::of('\u{1C}').is_whitespace());
        // Unassigned code points are "undefined" but still a character.
        assert_eq!(Flags::of('\u{378}').category(), 0x0001);
        assert!(!Flags::NONE.is_some());
        assert_eq!(collapse('é'), C_LETTER);
        assert_eq!(collapse('\u{00A0}'), '\u{0B}');
        assert_eq!(collapse('€'), C_SYMBOL);
        assert!(is_han('中') && !is_han('a'));
    }
}
