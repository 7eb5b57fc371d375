//! JSON Schema → GBNF for the common subset, in the spirit of llama.cpp's
//! `json-schema-to-grammar`: `type` object / array / string / number / integer / boolean /
//! null (or a list of them), `properties` in order with `required` (others optional,
//! `additionalProperties: false` by default), `items` + `minItems` / `maxItems`, string
//! `minLength` / `maxLength`, `enum`, `const`, `anyOf` / `oneOf`, `$ref` to `#/$defs/…` or
//! `#/definitions/…` (recursion allowed: a reference is a rule). Anything that would change what
//! is valid but is not implemented (`pattern`, `format`, `minimum`, …) is a clear error, so
//! every output the grammar admits is valid for the schema.
//!
//! Whitespace between tokens is limited (`space`), so a model is not forced into unnatural
//! output but cannot loop on whitespace.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Deepest nesting of schemas (a reference does not count: it becomes a rule).
const MAX_DEPTH: usize = 64;
/// Most rules one schema may produce.
const MAX_RULES: usize = 2_000;
/// Largest `maxItems` / `maxLength` expanded into the grammar.
const MAX_COUNT: u64 = 500;

const PRIMITIVES: &str = r#"space ::= | " " | "\n" [ \t]{0,20}
boolean ::= ("true" | "false") space
null ::= "null" space
integral-part ::= [0] | [1-9] [0-9]{0,15}
decimal-part ::= [0-9]{1,16}
integer ::= ("-"? integral-part) space
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
string ::= "\"" char* "\"" space
value ::= object | array | string | number | boolean | null
object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? "}" space
array ::= "[" space ( value ("," space value)* )? "]" space
"#;

/// The grammar of any JSON object (`response_format: {type: "json_object"}`).
pub fn json_object_gbnf() -> String {
    format!("root ::= object\n{PRIMITIVES}")
}

/// Compile a schema to GBNF text whose start rule is `root`.
pub fn schema_to_gbnf(schema: &Value) -> Result<String> {
    schema_to_gbnf_within(schema, |value| value.to_owned())
}

/// Compile a schema to GBNF text whose start rule `root` is `root_body(value)`, where `value`
/// is the expression of one JSON value matching the schema (to put literal text around it or
/// repeat it; the schema's own rules are named `s-…`, so the caller's expression may only use
/// literals, `value` and the primitives).
pub fn schema_to_gbnf_within(
    schema: &Value,
    root_body: impl FnOnce(&str) -> String,
) -> Result<String> {
    let mut c = Compiler {
        root: schema,
        rules: Vec::new(),
        names: HashMap::new(),
        refs: HashMap::new(),
    };
    let body = root_body(&c.visit(schema, "root", 0)?);
    let mut out = format!("root ::= {body}\n");
    for (name, body) in &c.rules {
        out.push_str(&format!("{name} ::= {body}\n"));
    }
    out.push_str(PRIMITIVES);
    Ok(out)
}

fn unsupported(msg: impl std::fmt::Display) -> Error {
    Error::Grammar(format!("JSON schema: {msg}"))
}

/// A GBNF string literal matching `text` exactly.
pub fn literal(text: &str) -> String {
    let mut s = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7F => {
                s.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Keywords that restrict values in ways this compiler does not implement.
const UNSUPPORTED: [&str; 12] = [
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "allOf",
    "not",
    "patternProperties",
    "uniqueItems",
    "prefixItems",
];

struct Compiler<'a> {
    root: &'a Value,
    /// Named rules in creation order (name, body).
    rules: Vec<(String, String)>,
    names: HashMap<String, usize>,
    /// `$ref` target → rule name.
    refs: HashMap<String, String>,
}

impl<'a> Compiler<'a> {
    /// A new rule named after `hint`, unique.
    fn add(&mut self, hint: &str, body: String) -> Result<String> {
        if self.rules.len() >= MAX_RULES {
            return Err(unsupported(format!(
                "schema needs more than {MAX_RULES} rules"
            )));
        }
        let base: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let base = format!("s-{}", base.trim_matches('-'));
        let n = self.names.entry(base.clone()).or_insert(0);
        *n += 1;
        let name = if *n == 1 { base } else { format!("{base}-{n}") };
        self.rules.push((name.clone(), body));
        Ok(name)
    }

    /// The GBNF expression for `schema` (a rule reference or a short expression).
    fn visit(&mut self, schema: &Value, hint: &str, depth: usize) -> Result<String> {
        if depth > MAX_DEPTH {
            return Err(unsupported(format!("nested deeper than {MAX_DEPTH}")));
        }
        let s = match schema {
            Value::Bool(true) => return Ok("value".into()),
            Value::Bool(false) => return Err(unsupported("`false` schema admits nothing")),
            Value::Object(s) => s,
            _ => return Err(unsupported(format!("`{hint}`: a schema must be an object"))),
        };
        if let Some(k) = UNSUPPORTED.iter().find(|k| s.contains_key(**k)) {
            return Err(unsupported(format!("`{k}` (in `{hint}`) is not supported")));
        }
        if let Some(r) = s.get("$ref") {
            return self.reference(r, depth);
        }
        if let Some(v) = s.get("const") {
            return Ok(format!("{} space", literal(&v.to_string())));
        }
        if let Some(e) = s.get("enum") {
            let vals = e
                .as_array()
                .ok_or_else(|| unsupported("`enum` must be an array"))?;
            if vals.is_empty() {
                return Err(unsupported("empty `enum`"));
            }
            let alts: Vec<String> = vals.iter().map(|v| literal(&v.to_string())).collect();
            return Ok(format!("({}) space", alts.join(" | ")));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = s.get(key) {
                let list = list
                    .as_array()
                    .ok_or_else(|| unsupported(format!("`{key}` must be an array")))?;
                if list.is_empty() {
                    return Err(unsupported(format!("empty `{key}`")));
                }
                let mut alts = Vec::new();
                for (i, sub) in list.iter().enumerate() {
                    alts.push(self.visit(sub, &format!("{hint}-{i}"), depth + 1)?);
                }
                return self.add(hint, alts.join(" | "));
            }
        }
        match s.get("type") {
            Some(Value::String(t)) => self.typed(t, s, hint, depth),
            Some(Value::Array(ts)) => {
                let mut alts = Vec::new();
                for t in ts {
                    let t = t
                        .as_str()
                        .ok_or_else(|| unsupported("`type` entries must be strings"))?;
                    alts.push(self.typed(t, s, &format!("{hint}-{t}"), depth)?);
                }
                self.add(hint, alts.join(" | "))
            }
            Some(_) => Err(unsupported("`type` must be a string or an array")),
            None if s.contains_key("properties") => self.typed("object", s, hint, depth),
            None if s.contains_key("items") => self.typed("array", s, hint, depth),
            None => Ok("value".into()),
        }
    }

    fn reference(&mut self, r: &Value, depth: usize) -> Result<String> {
        let r = r
            .as_str()
            .ok_or_else(|| unsupported("`$ref` must be a string"))?;
        if let Some(name) = self.refs.get(r) {
            return Ok(name.clone());
        }
        let key = r
            .strip_prefix("#/$defs/")
            .map(|k| ("$defs", k))
            .or_else(|| r.strip_prefix("#/definitions/").map(|k| ("definitions", k)))
            .ok_or_else(|| {
                unsupported(format!(
                    "`$ref` {r:?}: only #/$defs/… and #/definitions/… are supported"
                ))
            })?;
        let target = self
            .root
            .get(key.0)
            .and_then(|d| d.get(key.1))
            .ok_or_else(|| unsupported(format!("`$ref` {r:?} points at nothing")))?;
        // Reserve the rule first so a recursive reference finds it.
        let name = self.add(&format!("ref-{}", key.1), String::new())?;
        self.refs.insert(r.to_owned(), name.clone());
        let body = self.visit(target, &format!("ref-{}", key.1), depth + 1)?;
        if let Some(rule) = self.rules.iter_mut().find(|x| x.0 == name) {
            rule.1 = body;
        }
        Ok(name)
    }

    fn typed(
        &mut self,
        t: &str,
        s: &Map<String, Value>,
        hint: &str,
        depth: usize,
    ) -> Result<String> {
        match t {
            "object" => self.object(s, hint, depth),
            "array" => self.array(s, hint, depth),
            "string" => self.string(s, hint),
            "number" => Ok("number".into()),
            "integer" => Ok("integer".into()),
            "boolean" => Ok("boolean".into()),
            "null" => Ok("null".into()),
            other => Err(unsupported(format!("unknown type `{other}`"))),
        }
    }

    fn count(s: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
        match s.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = v.as_u64().ok_or_else(|| {
                    unsupported(format!("`{key}` must be a non-negative integer"))
                })?;
                if n > MAX_COUNT && key.starts_with("max") {
                    return Err(unsupported(format!(
                        "`{key}` {n} is larger than {MAX_COUNT}"
                    )));
                }
                if n > MAX_COUNT {
                    return Err(unsupported(format!(
                        "`{key}` {n} is larger than {MAX_COUNT}"
                    )));
                }
                Ok(Some(n))
            }
        }
    }

    /// `{min,max}` repetition suffix (`*` when unbounded).
    fn reps(min: u64, max: Option<u64>) -> String {
        match max {
            Some(m) => format!("{{{min},{m}}}"),
            None => format!("{{{min},}}"),
        }
    }

    fn string(&mut self, s: &Map<String, Value>, hint: &str) -> Result<String> {
        let min = Self::count(s, "minLength")?.unwrap_or(0);
        let max = Self::count(s, "maxLength")?;
        if max.is_some_and(|m| m < min) {
            return Err(unsupported("`maxLength` < `minLength`"));
        }
        if min == 0 && max.is_none() {
            return Ok("string".into());
        }
        self.add(
            hint,
            format!("\"\\\"\" char{} \"\\\"\" space", Self::reps(min, max)),
        )
    }

    fn array(&mut self, s: &Map<String, Value>, hint: &str, depth: usize) -> Result<String> {
        let item = match s.get("items") {
            Some(i) => self.visit(i, &format!("{hint}-item"), depth + 1)?,
            None => "value".into(),
        };
        let min = Self::count(s, "minItems")?.unwrap_or(0);
        let max = Self::count(s, "maxItems")?;
        if max.is_some_and(|m| m < min) {
            return Err(unsupported("`maxItems` < `minItems`"));
        }
        let list = |min: u64, max: Option<u64>| {
            format!(
                "{item} (\",\" space {item}){}",
                Self::reps(min.saturating_sub(1), max.map(|m| m - 1))
            )
        };
        let body = match (min, max) {
            (_, Some(0)) => String::new(),
            (0, _) => format!("( {} )?", list(1, max)),
            _ => list(min, max),
        };
        self.add(hint, format!("\"[\" space {body} \"]\" space"))
    }

    fn object(&mut self, s: &Map<String, Value>, hint: &str, depth: usize) -> Result<String> {
        let empty = Map::new();
        let props = match s.get("properties") {
            Some(Value::Object(p)) => p,
            Some(_) => return Err(unsupported("`properties` must be an object")),
            None => &empty,
        };
        let extra = s.get("additionalProperties");
        if props.is_empty() {
            return match extra {
                Some(Value::Bool(false)) => self.add(hint, "\"{\" space \"}\" space".into()),
                Some(v @ Value::Object(_)) => {
                    let val = self.visit(v, &format!("{hint}-value"), depth + 1)?;
                    let kv = format!("string \":\" space {val}");
                    self.add(
                        hint,
                        format!("\"{{\" space ( {kv} (\",\" space {kv})* )? \"}}\" space"),
                    )
                }
                _ => Ok("object".into()),
            };
        }
        if extra.is_some_and(|v| v != &Value::Bool(false)) {
            return Err(unsupported(format!(
                "`additionalProperties` with `properties` (in `{hint}`) is not supported"
            )));
        }
        let required: Vec<&str> = match s.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(unsupported("`required` must be an array")),
            None => Vec::new(),
        };
        if let Some(r) = required.iter().find(|r| !props.contains_key(**r)) {
            return Err(unsupported(format!(
                "required property `{r}` is not in `properties`"
            )));
        }
        let mut kvs = Vec::new();
        for (k, v) in props {
            let val = self.visit(v, &format!("{hint}-{k}"), depth + 1)?;
            let kv = format!(
                "{} space \":\" space {val}",
                literal(&Value::String(k.clone()).to_string())
            );
            kvs.push((
                self.add(&format!("{hint}-{k}-kv"), kv)?,
                required.contains(&k.as_str()),
            ));
        }
        let body = self.properties(&kvs, hint)?;
        self.add(hint, format!("\"{{\" space {body} \"}}\" space"))
    }

    /// Properties in order, optional ones skippable, commas only between those present:
    /// `first(i)` = from property i with nothing written yet, `rest(i)` = after something.
    fn properties(&mut self, kvs: &[(String, bool)], hint: &str) -> Result<String> {
        let n = kvs.len();
        let mut rest = vec![String::new(); n + 1];
        let mut first = vec![String::new(); n + 1];
        for i in (0..n).rev() {
            let (kv, req) = &kvs[i];
            let r = if *req {
                format!("\",\" space {kv} {}", rest[i + 1])
            } else {
                format!("(\",\" space {kv})? {}", rest[i + 1])
            };
            rest[i] = self.add(&format!("{hint}-rest"), r)?;
            let f = if *req {
                format!("{kv} {}", rest[i + 1])
            } else if first[i + 1].is_empty() {
                format!("({kv} {})?", rest[i + 1])
            } else {
                format!("{kv} {} | {}", rest[i + 1], first[i + 1])
            };
            first[i] = self.add(&format!("{hint}-first"), f)?;
        }
        Ok(first[0].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::gbnf::parse;
    use serde_json::json;

    fn compiles(schema: Value) -> String {
        let g = schema_to_gbnf(&schema).expect("schema compiles");
        parse(&g, "root").unwrap_or_else(|e| panic!("{e}\n{g}"));
        g
    }

    #[test]
    fn the_supported_subset_compiles() {
        compiles(json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 10},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 3},
            "x": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "c": {"const": 5},
            "t": {"type": ["string", "boolean"]},
            "n": {"$ref": "#/$defs/node"}
        }, "required": ["name"], "$defs": {"node": {"type": "object", "properties": {
            "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["next"]}}}));
        compiles(json!({}));
        compiles(json!({"type": "array", "maxItems": 0}));
        compiles(json!({"type": "object", "additionalProperties": {"type": "integer"}}));
        parse(&json_object_gbnf(), "root").expect("json_object grammar");
    }

    #[test]
    fn unsupported_keywords_are_clear_errors() {
        let e = |s: Value| schema_to_gbnf(&s).expect_err("must fail").to_string();
        assert!(e(json!({"type": "string", "pattern": "^a"})).contains("`pattern`"));
        assert!(e(json!({"type": "string", "format": "date"})).contains("`format`"));
        assert!(e(json!({"$ref": "http://x"})).contains("$ref"));
        assert!(e(json!({"$ref": "#/$defs/missing"})).contains("points at nothing"));
        assert!(e(json!({"type": "array", "maxItems": 100000})).contains("larger than"));
        assert!(
            e(json!({"type": "object", "properties": {"a": {}}, "required": ["b"]}))
                .contains("`b`")
        );
        assert!(e(json!({"type": "wat"})).contains("unknown type"));
    }
}
