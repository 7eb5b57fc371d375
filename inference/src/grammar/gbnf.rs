//! A parser for llama.cpp's GBNF and its lowering to the flat rules the [`Matcher`] runs.
//!
//! Syntax: `name ::= alternatives` (a rule ends at a newline outside parentheses), literals
//! `"..."` with `\n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH`, classes `[a-z]` / `[^...]`, `.`,
//! groups, `|`, postfix `* + ?` and `{m}`, `{m,}`, `{m,n}`, `#` comments.
//!
//! Hostile grammars are refused with a line/column error rather than allowed to use unbounded
//! memory or loop: rule count, nesting depth and the elements repetition expands into are
//! bounded; undefined rules, left recursion and rules that can never finish are errors.
//!
//! [`Matcher`]: super::Matcher

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Most named + generated rules a grammar may have.
pub const MAX_RULES: usize = 10_000;
/// Deepest nesting of parentheses.
pub const MAX_DEPTH: usize = 64;
/// Largest `m` / `n` of `{m,n}`.
pub const MAX_REPEAT: u32 = 1_000;
/// Most elements all rules may hold after repetitions are expanded.
pub const MAX_ELEMENTS: usize = 200_000;
/// Longest grammar source accepted.
pub const MAX_SOURCE: usize = 1 << 20;

/// A set of code points: sorted inclusive ranges, possibly negated (`[^...]`, `.` = `[^]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    pub ranges: Vec<(u32, u32)>,
    pub negated: bool,
}

impl Class {
    pub fn matches(&self, cp: u32) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= cp && cp <= b) != self.negated
    }

    /// Whether any code point in `lo..=hi` matches (for a token ending mid-character).
    pub fn intersects(&self, lo: u32, hi: u32) -> bool {
        if self.negated {
            // Some point of lo..=hi is outside every range unless the ranges cover it all.
            let mut next = lo;
            let mut rs = self.ranges.clone();
            rs.sort_unstable();
            for (a, b) in rs {
                if a > next {
                    break;
                }
                if b >= next {
                    next = b.saturating_add(1);
                }
                if next > hi {
                    return false;
                }
            }
            next <= hi
        } else {
            self.ranges.iter().any(|&(a, b)| a <= hi && lo <= b)
        }
    }
}

/// One element of an alternative: a code point from a class, or another rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    Char(u32),
    Rule(u32),
}

/// A compiled grammar: each rule is a list of alternatives, each a sequence of elements.
#[derive(Clone, Debug)]
pub struct Grammar {
    pub rules: Vec<Vec<Vec<Elem>>>,
    pub names: Vec<String>,
    pub classes: Vec<Class>,
    pub root: u32,
}

/// The parsed form, before lowering.
#[derive(Clone, Debug)]
enum Expr {
    Seq(Vec<Expr>),
    Alt(Vec<Expr>),
    Lit(Vec<u32>),
    Class(Class),
    Ref(String, usize, usize),
    Repeat(Box<Expr>, u32, Option<u32>),
}

fn err(line: usize, col: usize, msg: impl std::fmt::Display) -> Error {
    Error::Grammar(format!("line {line}, column {col}: {msg}"))
}

struct Parser<'a> {
    src: &'a [char],
    pos: usize,
    line: usize,
    col: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.src.get(self.pos + k).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn error(&self, msg: impl std::fmt::Display) -> Error {
        err(self.line, self.col, msg)
    }

    /// Skip blanks and comments; newlines too when `newlines` (inside parentheses, between rules).
    fn skip(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' => {
                    self.bump();
                }
                '\n' if newlines => {
                    self.bump();
                }
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn name(&mut self) -> Option<String> {
        let mut s = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        {
            s.push(c);
            self.bump();
        }
        (!s.is_empty()).then_some(s)
    }

    fn rule(&mut self) -> Result<(String, Expr)> {
        let name = self
            .name()
            .ok_or_else(|| self.error("expected a rule name"))?;
        self.skip(false);
        if !(self.peek() == Some(':')
            && self.peek_at(1) == Some(':')
            && self.peek_at(2) == Some('='))
        {
            return Err(self.error(format!("expected `::=` after `{name}`")));
        }
        for _ in 0..3 {
            self.bump();
        }
        self.skip(true);
        let body = self.alternatives(0)?;
        Ok((name, body))
    }

    fn alternatives(&mut self, depth: usize) -> Result<Expr> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("groups nested deeper than {MAX_DEPTH}")));
        }
        let mut alts = vec![self.sequence(depth)?];
        loop {
            // A `|` on a following line continues the rule (newlines end it otherwise).
            let save = (self.pos, self.line, self.col);
            self.skip(true);
            if self.peek() != Some('|') {
                (self.pos, self.line, self.col) = save;
                break;
            }
            self.bump();
            self.skip(depth > 0);
            alts.push(self.sequence(depth)?);
        }
        Ok(if alts.len() == 1 {
            alts.remove(0)
        } else {
            Expr::Alt(alts)
        })
    }

    fn sequence(&mut self, depth: usize) -> Result<Expr> {
        let mut items = Vec::new();
        loop {
            self.skip(depth > 0);
            let (line, col) = (self.line, self.col);
            let item = match self.peek() {
                None | Some('|') | Some(')') | Some('\n') => break,
                Some('"') => {
                    self.bump();
                    Expr::Lit(self.literal()?)
                }
                Some('[') => {
                    self.bump();
                    Expr::Class(self.class()?)
                }
                Some('.') => {
                    self.bump();
                    Expr::Class(Class {
                        ranges: vec![],
                        negated: true,
                    })
                }
                Some('(') => {
                    self.bump();
                    self.skip(true);
                    let e = self.alternatives(depth + 1)?;
                    self.skip(true);
                    if self.bump() != Some(')') {
                        return Err(err(line, col, "unclosed `(`"));
                    }
                    e
                }
                Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                    // A name followed by `::=` starts the next rule (rules may share a line
                    // only through this check, as in llama.cpp).
                    let save = (self.pos, self.line, self.col);
                    let n = self.name().unwrap_or_default();
                    self.skip(false);
                    if self.peek() == Some(':') && self.peek_at(1) == Some(':') {
                        (self.pos, self.line, self.col) = save;
                        break;
                    }
                    Expr::Ref(n, line, col)
                }
                Some(c) => return Err(self.error(format!("unexpected `{c}`"))),
            };
            let item = self.postfix(item)?;
            items.push(item);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Seq(items)
        })
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr> {
        loop {
            self.skip(false);
            e = match self.peek() {
                Some('*') => Expr::Repeat(Box::new(e), 0, None),
                Some('+') => Expr::Repeat(Box::new(e), 1, None),
                Some('?') => Expr::Repeat(Box::new(e), 0, Some(1)),
                Some('{') => {
                    self.bump();
                    let (m, n) = self.braces()?;
                    e = Expr::Repeat(Box::new(e), m, n);
                    continue;
                }
                _ => return Ok(e),
            };
            self.bump();
        }
    }

    fn number(&mut self) -> Result<u32> {
        self.skip(false);
        let mut v: u64 = 0;
        let mut any = false;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            self.bump();
            any = true;
            v = (v * 10 + d as u64).min(u64::from(u32::MAX));
        }
        if !any {
            return Err(self.error("expected a number in `{...}`"));
        }
        if v > MAX_REPEAT as u64 {
            return Err(self.error(format!("repetition count {v} is larger than {MAX_REPEAT}")));
        }
        Ok(v as u32)
    }

    fn braces(&mut self) -> Result<(u32, Option<u32>)> {
        let m = self.number()?;
        self.skip(false);
        let n = match self.bump() {
            Some('}') => return Ok((m, Some(m))),
            Some(',') => {
                self.skip(false);
                if self.peek() == Some('}') {
                    None
                } else {
                    Some(self.number()?)
                }
            }
            _ => return Err(self.error("expected `,` or `}` in a repetition")),
        };
        self.skip(false);
        if self.bump() != Some('}') {
            return Err(self.error("expected `}`"));
        }
        if n.is_some_and(|n| n < m) {
            return Err(self.error(format!("repetition {{{m},{}}}: max < min", n.unwrap_or(0))));
        }
        Ok((m, n))
    }

    fn escape(&mut self) -> Result<u32> {
        let hex = |p: &mut Self, n: usize| -> Result<u32> {
            let mut v = 0u32;
            for _ in 0..n {
                let d = p.bump().and_then(|c| c.to_digit(16));
                v = v * 16 + d.ok_or_else(|| p.error("bad hex escape"))?;
            }
            Ok(v)
        };
        let cp = match self.bump() {
            Some('n') => '\n' as u32,
            Some('r') => '\r' as u32,
            Some('t') => '\t' as u32,
            Some('0') => 0,
            Some('x') => hex(self, 2)?,
            Some('u') => hex(self, 4)?,
            Some('U') => hex(self, 8)?,
            Some(c @ ('\\' | '"' | '[' | ']' | '-' | '^' | '\'')) => c as u32,
            Some(c) => return Err(self.error(format!("unknown escape `\\{c}`"))),
            None => return Err(self.error("unexpected end after `\\`")),
        };
        if cp > 0x10FFFF {
            return Err(self.error("escape beyond U+10FFFF"));
        }
        Ok(cp)
    }

    /// One character of a literal or class, escapes resolved.
    fn char_in(&mut self, what: &str) -> Result<u32> {
        match self.bump() {
            Some('\\') => self.escape(),
            Some('\n') | None => Err(self.error(format!("unterminated {what}"))),
            Some(c) => Ok(c as u32),
        }
    }

    fn literal(&mut self) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        while self.peek() != Some('"') {
            out.push(self.char_in("string literal")?);
        }
        self.bump();
        Ok(out)
    }

    fn class(&mut self) -> Result<Class> {
        let negated = self.peek() == Some('^');
        if negated {
            self.bump();
        }
        let mut ranges = Vec::new();
        while self.peek() != Some(']') {
            let a = self.char_in("character class")?;
            let b = if self.peek() == Some('-') && self.peek_at(1) != Some(']') {
                self.bump();
                self.char_in("character class")?
            } else {
                a
            };
            if b < a {
                return Err(self.error("character range is reversed"));
            }
            ranges.push((a, b));
        }
        self.bump();
        Ok(Class { ranges, negated })
    }
}

/// Parse GBNF text; `root` names the start rule (llama.cpp uses `root`).
pub fn parse(src: &str, root: &str) -> Result<Grammar> {
    if src.len() > MAX_SOURCE {
        return Err(Error::Grammar(format!(
            "grammar longer than {MAX_SOURCE} bytes"
        )));
    }
    let chars: Vec<char> = src.chars().collect();
    let mut p = Parser {
        src: &chars,
        pos: 0,
        line: 1,
        col: 1,
    };
    let mut defs: Vec<(String, Expr, usize, usize)> = Vec::new();
    loop {
        p.skip(true);
        if p.peek().is_none() {
            break;
        }
        let (line, col) = (p.line, p.col);
        let (name, body) = p.rule()?;
        if defs.iter().any(|d| d.0 == name) {
            return Err(err(line, col, format!("rule `{name}` is defined twice")));
        }
        if defs.len() >= MAX_RULES {
            return Err(err(line, col, format!("more than {MAX_RULES} rules")));
        }
        defs.push((name, body, line, col));
    }
    Lower::run(defs, root)
}

/// Lowering: groups and repetitions become generated rules (as llama.cpp does), so every
/// alternative is a flat sequence of classes and rule references.
struct Lower {
    g: Grammar,
    ids: HashMap<String, u32>,
    elements: usize,
}

impl Lower {
    fn run(defs: Vec<(String, Expr, usize, usize)>, root: &str) -> Result<Grammar> {
        let mut l = Lower {
            g: Grammar {
                rules: Vec::new(),
                names: Vec::new(),
                classes: Vec::new(),
                root: 0,
            },
            ids: HashMap::new(),
            elements: 0,
        };
        for (i, d) in defs.iter().enumerate() {
            l.ids.insert(d.0.clone(), i as u32);
            l.g.names.push(d.0.clone());
            l.g.rules.push(Vec::new());
        }
        l.g.root = *l
            .ids
            .get(root)
            .ok_or_else(|| Error::Grammar(format!("no rule named `{root}`")))?;
        for (i, (_, body, _, _)) in defs.iter().enumerate() {
            let alts = l.alts(body)?;
            l.g.rules[i] = alts;
        }
        super::check::check(&l.g)?;
        Ok(l.g)
    }

    fn new_rule(&mut self, base: u32, alts: Vec<Vec<Elem>>) -> Result<u32> {
        if self.g.rules.len() >= MAX_RULES {
            return Err(Error::Grammar(format!(
                "more than {MAX_RULES} rules after expanding repetitions"
            )));
        }
        let name = format!(
            "{}_{}",
            self.g.names[base as usize % self.g.names.len().max(1)],
            self.g.rules.len()
        );
        self.g.names.push(name);
        self.g.rules.push(alts);
        Ok(self.g.rules.len() as u32 - 1)
    }

    fn count(&mut self, n: usize) -> Result<()> {
        self.elements += n;
        if self.elements > MAX_ELEMENTS {
            return Err(Error::Grammar(format!(
                "grammar expands to more than {MAX_ELEMENTS} elements (repetitions too large)"
            )));
        }
        Ok(())
    }

    fn class(&mut self, c: Class) -> Elem {
        if let Some(i) = self.g.classes.iter().position(|x| *x == c) {
            return Elem::Char(i as u32);
        }
        self.g.classes.push(c);
        Elem::Char(self.g.classes.len() as u32 - 1)
    }

    fn alts(&mut self, e: &Expr) -> Result<Vec<Vec<Elem>>> {
        match e {
            Expr::Alt(v) => v.iter().map(|a| self.seq(a)).collect(),
            _ => Ok(vec![self.seq(e)?]),
        }
    }

    fn seq(&mut self, e: &Expr) -> Result<Vec<Elem>> {
        let mut out = Vec::new();
        self.push(e, &mut out)?;
        Ok(out)
    }

    fn push(&mut self, e: &Expr, out: &mut Vec<Elem>) -> Result<()> {
        match e {
            Expr::Seq(v) => {
                for x in v {
                    self.push(x, out)?;
                }
            }
            Expr::Lit(cps) => {
                self.count(cps.len())?;
                for &cp in cps {
                    let el = self.class(Class {
                        ranges: vec![(cp, cp)],
                        negated: false,
                    });
                    out.push(el);
                }
            }
            Expr::Class(c) => {
                self.count(1)?;
                let el = self.class(c.clone());
                out.push(el);
            }
            Expr::Ref(name, line, col) => {
                self.count(1)?;
                let id = self
                    .ids
                    .get(name)
                    .ok_or_else(|| err(*line, *col, format!("undefined rule `{name}`")))?;
                out.push(Elem::Rule(*id));
            }
            Expr::Alt(_) => {
                let alts = self.alts(e)?;
                let id = self.new_rule(0, alts)?;
                self.count(1)?;
                out.push(Elem::Rule(id));
            }
            Expr::Repeat(x, m, n) => self.repeat(x, *m, *n, out)?,
        }
        Ok(())
    }

    /// `x{m,n}`: `x` m times, then `x*` (a right-recursive rule) or n−m nested optionals.
    fn repeat(&mut self, x: &Expr, m: u32, n: Option<u32>, out: &mut Vec<Elem>) -> Result<()> {
        let body = self.seq(x)?;
        for _ in 0..m {
            self.count(body.len())?;
            out.extend_from_slice(&body);
        }
        match n {
            None => {
                // r ::= x r | ε   (right recursion: the matcher's stacks do not grow)
                let id = self.new_rule(0, Vec::new())?;
                let mut a = body.clone();
                a.push(Elem::Rule(id));
                self.count(a.len())?;
                self.g.rules[id as usize] = vec![a, Vec::new()];
                out.push(Elem::Rule(id));
            }
            Some(n) if n > m => {
                // opt_k ::= x opt_{k-1} | ε, built from the innermost out.
                let mut inner: Option<u32> = None;
                for _ in m..n {
                    let mut a = body.clone();
                    if let Some(i) = inner {
                        a.push(Elem::Rule(i));
                    }
                    self.count(a.len())?;
                    inner = Some(self.new_rule(0, vec![a, Vec::new()])?);
                }
                if let Some(i) = inner {
                    out.push(Elem::Rule(i));
                }
            }
            Some(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(src: &str) -> String {
        parse(src, "root").expect_err("must fail").to_string()
    }

    #[test]
    fn parses_the_constructs() {
        let g = parse(
            r#"
            # a comment
            root ::= "a\n\x41\u00e9" [a-z0-9_] [^"\\] . (x | "y")* x+ x? x{2} x{1,} x{0,3}
            x ::= "x"   # trailing
               | "z"
            "#,
            "root",
        )
        .expect("parses");
        assert_eq!(g.names[g.root as usize], "root");
        assert!(g.rules.len() > 2);
        let x = g.names.iter().position(|n| n == "x").expect("x");
        assert_eq!(g.rules[x].len(), 2);
    }

    #[test]
    fn errors_say_where() {
        assert!(msg("root ::= foo").contains("undefined rule `foo`"));
        assert!(msg("root ::= foo").contains("line 1, column 10"));
        assert!(msg("root ::= \"abc").contains("unterminated"));
        assert!(msg("root ::= [abc").contains("unterminated"));
        assert!(msg("root ::= (\"a\"").contains("unclosed"));
        assert!(msg("root ::= \"a\"\nroot ::= \"b\"").contains("defined twice"));
        assert!(msg("root = \"a\"").contains("::="));
        assert!(parse("x ::= \"a\"", "root").is_err());
    }

    #[test]
    fn hostile_grammars_are_refused() {
        assert!(msg("root ::= \"a\"{1000000}").contains("larger than"));
        assert!(msg("root ::= ((\"a\"{1000}){1000}){1000}").contains("elements"));
        assert!(msg("root ::= root \"a\" | \"b\"").contains("left recursion"));
        assert!(msg("root ::= x\nx ::= y \"a\"\ny ::= \"\" x | \"b\"").contains("left recursion"));
        assert!(msg("root ::= (\"\")*").contains("left recursion"));
        assert!(msg("root ::= \"a\" root").contains("never finish"));
        let deep = format!("root ::= {}\"a\"{}", "(".repeat(100), ")".repeat(100));
        assert!(msg(&deep).contains("nested deeper"));
    }
}
