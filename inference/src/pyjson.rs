//! `tojson` as chat templates expect it: Python's `json.dumps` (what Hugging Face's
//! `apply_chat_template` and llama.cpp's Jinja engine write), not minijinja's compact,
//! HTML-escaped JSON. Tool-calling templates print the tool list and the call arguments with
//! `| tojson`, and the model was trained on exactly that text:
//! `{"type": "function", "function": {"name": "f", ...}}` (", " and ": " separators, keys in
//! their order, non-ASCII kept, `<`, `>`, `&` and `'` not escaped).
//!
//! Options (keyword or positional after the value, like HF's `tojson(x, ensure_ascii=False,
//! indent=None, separators=None, sort_keys=False)`): with `indent` the separators are "," and
//! ": " and every item is on its own line. Floats are written like Python's `repr` (`1.0`,
//! `1e+16`, `1.5e-07`).

use std::fmt::Write as _;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// Nesting deeper than this is an error (the writer recurses).
const MAX_DEPTH: usize = 128;

/// How one `tojson` call writes.
#[derive(Clone, Debug)]
pub struct Options {
    pub indent: Option<usize>,
    pub item_sep: String,
    pub key_sep: String,
    pub ensure_ascii: bool,
    pub sort_keys: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            indent: None,
            item_sep: ", ".into(),
            key_sep: ": ".into(),
            ensure_ascii: false,
            sort_keys: false,
        }
    }
}

impl Options {
    /// The filter's arguments: `indent` positional or keyword, the rest keyword.
    pub fn from_args(indent: Option<&Value>, kwargs: &Kwargs) -> Result<Options, Error> {
        let indent = match indent {
            Some(v) if !v.is_none() && !v.is_undefined() => Some(v.clone()),
            _ => kwargs.get::<Option<Value>>("indent")?,
        };
        let indent = match indent {
            None => None,
            Some(v) if v.is_none() => None,
            Some(v) => Some(v.as_usize().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "`tojson` indent must be a number",
                )
            })?),
        };
        let mut o = Options {
            indent,
            item_sep: if indent.is_some() { "," } else { ", " }.into(),
            ..Options::default()
        };
        if let Some(seps) = kwargs.get::<Option<Value>>("separators")? {
            if !seps.is_none() {
                let mut it = seps.try_iter()?;
                let item = it.next().and_then(|v| v.as_str().map(str::to_owned));
                let key = it.next().and_then(|v| v.as_str().map(str::to_owned));
                match (item, key) {
                    (Some(i), Some(k)) => {
                        o.item_sep = i;
                        o.key_sep = k;
                    }
                    _ => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            "`tojson` separators must be two strings",
                        ))
                    }
                }
            }
        }
        o.ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
        o.sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
        kwargs.assert_all_used()?;
        Ok(o)
    }
}

/// `value` as Python's `json.dumps` writes it; an error past `cap` bytes.
pub fn to_string(value: &Value, opts: &Options, cap: usize) -> Result<String, Error> {
    let mut w = Writer {
        out: String::new(),
        opts,
        cap,
    };
    w.value(value, 0)?;
    Ok(w.out)
}

struct Writer<'a> {
    out: String,
    opts: &'a Options,
    cap: usize,
}

fn too_large(what: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, what)
}

impl Writer<'_> {
    fn push(&mut self, s: &str) -> Result<(), Error> {
        if self.out.len().saturating_add(s.len()) > self.cap {
            return Err(too_large(format!(
                "`tojson` is more than {} bytes",
                self.cap
            )));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn newline(&mut self, depth: usize) -> Result<(), Error> {
        if let Some(n) = self.opts.indent {
            self.push("\n")?;
            let pad = n.saturating_mul(depth);
            if self.out.len().saturating_add(pad) > self.cap {
                return Err(too_large(format!(
                    "`tojson` is more than {} bytes",
                    self.cap
                )));
            }
            self.out.extend(std::iter::repeat_n(' ', pad));
        }
        Ok(())
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("`tojson`: nested more than {MAX_DEPTH} levels"),
            ));
        }
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => self.push("null"),
            ValueKind::Bool => self.push(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                let s = number(v);
                self.push(&s)
            }
            ValueKind::String => {
                let s = string(v.as_str().unwrap_or(""), self.opts.ensure_ascii);
                self.push(&s)
            }
            ValueKind::Bytes => {
                let b = v.as_bytes().unwrap_or(&[]);
                let s = string(&String::from_utf8_lossy(b), self.opts.ensure_ascii);
                self.push(&s)
            }
            ValueKind::Map => self.map(v, depth),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.push("[")?;
                if !items.is_empty() {
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            let sep = self.opts.item_sep.clone();
                            self.push(&sep)?;
                        }
                        self.newline(depth + 1)?;
                        self.value(item, depth + 1)?;
                    }
                    self.newline(depth)?;
                }
                self.push("]")
            }
            ValueKind::Invalid => Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("`tojson`: invalid value {v}"),
            )),
            // Plain objects (loop, namespace, ...) and kinds added later: their text.
            _ => {
                let s = string(&v.to_string(), self.opts.ensure_ascii);
                self.push(&s)
            }
        }
    }

    fn map(&mut self, v: &Value, depth: usize) -> Result<(), Error> {
        let mut keys: Vec<Value> = v.try_iter()?.collect();
        if self.opts.sort_keys {
            keys.sort_by_key(key_text);
        }
        self.push("{")?;
        if !keys.is_empty() {
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    let sep = self.opts.item_sep.clone();
                    self.push(&sep)?;
                }
                self.newline(depth + 1)?;
                let ks = string(&key_text(k), self.opts.ensure_ascii);
                self.push(&ks)?;
                let sep = self.opts.key_sep.clone();
                self.push(&sep)?;
                let item = v.get_item(k)?;
                self.value(&item, depth + 1)?;
            }
            self.newline(depth)?;
        }
        self.push("}")
    }
}

/// A key as Python's `json.dumps` converts it: strings as they are, `true`, `null`, numbers.
fn key_text(k: &Value) -> String {
    match k.kind() {
        ValueKind::String => k.as_str().unwrap_or("").to_owned(),
        ValueKind::Bool => (if k.is_true() { "true" } else { "false" }).into(),
        ValueKind::None | ValueKind::Undefined => "null".into(),
        ValueKind::Number => number(k),
        _ => k.to_string(),
    }
}

/// An integer as it is; a float like Python's `repr` (`NaN`, `Infinity` like `json.dumps`).
fn number(v: &Value) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float_repr(f),
            _ => n.to_string(),
        },
        // Not representable in serde_json (NaN, infinities, i128): minijinja's own text.
        _ => match v.to_string().as_str() {
            "NaN" | "nan" => "NaN".into(),
            "inf" => "Infinity".into(),
            "-inf" => "-Infinity".into(),
            s => s.to_owned(),
        },
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional for exponents
/// -4..16, else `d.ddde+XX`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.5e-7", "1e16", "0e0".
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = mant.strip_prefix('-').map_or(("", mant), |m| ("-", m));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let point = exp as usize + 1;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// A JSON string literal the way Python writes it.
fn string(s: &str, ensure_ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumps(v: serde_json::Value, opts: &Options) -> String {
        to_string(&Value::from_serialize(&v), opts, 1 << 20).unwrap()
    }

    #[test]
    fn python_separators_and_order() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"type": "function", "b": [1, 2.5, true, null], "a": {}}"#)
                .unwrap();
        assert_eq!(
            dumps(v.clone(), &Options::default()),
            r#"{"type": "function", "b": [1, 2.5, true, null], "a": {}}"#
        );
        let indented = Options {
            indent: Some(2),
            item_sep: ",".into(),
            ..Options::default()
        };
        assert_eq!(
            dumps(v.clone(), &indented),
            "{\n  \"type\": \"function\",\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"a\": {}\n}"
        );
        let sorted = Options {
            sort_keys: true,
            ..Options::default()
        };
        assert!(dumps(v, &sorted).starts_with(r#"{"a": {}, "b""#));
    }

    #[test]
    fn strings_like_python() {
        let v = serde_json::json!("é <b>&'\"\\\n\u{1}\u{7f}😀");
        assert_eq!(
            dumps(v.clone(), &Options::default()),
            "\"é <b>&'\\\"\\\\\\n\\u0001\u{7f}😀\""
        );
        let ascii = Options {
            ensure_ascii: true,
            ..Options::default()
        };
        assert_eq!(
            dumps(v, &ascii),
            "\"\\u00e9 <b>&'\\\"\\\\\\n\\u0001\\u007f\\ud83d\\ude00\""
        );
    }

    #[test]
    fn floats_like_python_repr() {
        for (f, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789.0, "123456789.0"),
            (1e-4, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (0.0, "0.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(float_repr(f), s, "{f}");
        }
    }

    #[test]
    fn limits() {
        let v = serde_json::Value::from(vec!["x"; 100]);
        assert!(to_string(&Value::from_serialize(&v), &Options::default(), 50).is_err());
        let mut mv = Value::from(1);
        for _ in 0..200 {
            mv = Value::from(vec![mv]);
        }
        assert!(to_string(&mv, &Options::default(), 1 << 20).is_err());
    }
}
