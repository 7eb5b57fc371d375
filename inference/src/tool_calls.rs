//! Tool calls (OpenAI's `tools` / `tool_calls`): the tool list a chat template renders, and the
//! model's reply parsed back into calls.
//!
//! - [`normalize_tools`] checks an OpenAI `tools` array and writes it the way llama.cpp hands it
//!   to a template: `[{"type": "function", "function": {"name", "description", "parameters"}}]`
//!   (other fields dropped, `description` "" and `parameters` `{}` when absent), so that a prompt
//!   renders byte for byte as llama-server renders it.
//!   [`crate::chat::ChatTemplate::render_with_tools`] calls it.
//! - [`ToolFamily::detect`] tells from the template's source how its model writes a call;
//!   [`parse_tool_calls`] turns a reply into [`ParsedReply`] `{content, tool_calls}`:
//!   - [`ToolFamily::Hermes`] (Qwen2.5, Qwen3, Hermes, SmolLM3, ...): one or more
//!     `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, text around them is the
//!     content; like llama.cpp's parser, also such objects without the tags, as the whole reply
//!     or in a ```` ```json ```` block (how Qwen2.5-Coder often answers);
//!   - [`ToolFamily::Llama3`] (Llama 3.1/3.2/3.3): the reply is `{"name": ..., "parameters":
//!     {...}}` (several separated by `;` or new lines), optionally after `<|python_tag|>`;
//!   - [`ToolFamily::Mistral`]: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]` or
//!     `[TOOL_CALLS]name[ARGS]{...}`.
//!
//!   Anything that does not parse (malformed JSON, a missing name, arguments that are not an
//!   object) is no call: its text stays in the content. Ids are `call_0`, `call_1`, ... in the
//!   order of the reply.
//!
//! A [`ToolCall`] serializes as OpenAI's `{"id", "type": "function", "function": {"name",
//! "arguments"}}`, arguments as JSON text; it deserializes from that shape with the arguments as
//! text or as an object.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

mod choice;
mod stream;
pub use choice::{forced_call_grammar, ToolChoice};
pub use stream::{ToolCallStream, ToolDelta};

/// One call of a tool: `arguments` is JSON text (an object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireCall", try_from = "WireCall")]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Serialize, Deserialize)]
struct WireCall {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default = "function_kind")]
    kind: String,
    function: WireFunction,
}

#[derive(Serialize, Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

fn function_kind() -> String {
    "function".into()
}

impl From<ToolCall> for WireCall {
    fn from(c: ToolCall) -> WireCall {
        WireCall {
            id: c.id,
            kind: function_kind(),
            function: WireFunction {
                name: c.name,
                arguments: Value::String(c.arguments),
            },
        }
    }
}

impl TryFrom<WireCall> for ToolCall {
    type Error = String;
    fn try_from(w: WireCall) -> std::result::Result<ToolCall, String> {
        if w.kind != "function" {
            return Err(format!("tool call type `{}` (only `function`)", w.kind));
        }
        let arguments = match w.function.arguments {
            Value::String(s) => s,
            Value::Null => "{}".into(),
            v => v.to_string(),
        };
        Ok(ToolCall {
            id: w.id,
            name: w.function.name,
            arguments,
        })
    }
}

impl ToolCall {
    /// The call as a template sees it (llama.cpp's shape): arguments that parse as a JSON
    /// object are handed over as that object (templates print them with `| tojson`), anything
    /// else as the text.
    pub fn template_value(&self) -> Value {
        let args = match serde_json::from_str::<Value>(&self.arguments) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::String(self.arguments.clone()),
        };
        let mut function = Map::new();
        function.insert("name".into(), Value::String(self.name.clone()));
        function.insert("arguments".into(), args);
        let mut call = Map::new();
        call.insert("type".into(), Value::String("function".into()));
        call.insert("function".into(), Value::Object(function));
        if !self.id.is_empty() {
            call.insert("id".into(), Value::String(self.id.clone()));
        }
        Value::Object(call)
    }
}

/// A reply split into its text and its tool calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedReply {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
}

/// How a model family writes tool calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolFamily {
    /// `<tool_call>{"name", "arguments"}</tool_call>` (Hermes 2 Pro, Qwen2.5, Qwen3, ...).
    Hermes,
    /// `{"name", "parameters"}`, optionally after `<|python_tag|>` (Llama 3.1+).
    Llama3,
    /// `[TOOL_CALLS][{"name", "arguments"}]` or `[TOOL_CALLS]name[ARGS]{...}`.
    Mistral,
    /// The template defines no tool-call format we know: replies are content only.
    None,
}

impl ToolFamily {
    /// The family of a chat template, from its source text.
    pub fn detect(template_source: &str) -> ToolFamily {
        let has = |s: &str| template_source.contains(s);
        if has("<tool_call>") {
            ToolFamily::Hermes
        } else if has("[TOOL_CALLS]") {
            ToolFamily::Mistral
        } else if has("<|python_tag|>") || (has("\"parameters\"") && has("<|eot_id|>")) {
            ToolFamily::Llama3
        } else {
            ToolFamily::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ToolFamily::Hermes => "hermes",
            ToolFamily::Llama3 => "llama3",
            ToolFamily::Mistral => "mistral",
            ToolFamily::None => "none",
        }
    }
}

/// Check an OpenAI `tools` array and write it as llama.cpp gives it to templates (see the
/// module documentation). Errors name the offending entry in one line.
pub fn normalize_tools(tools: &Value) -> Result<Value> {
    let bad = |msg: String| Error::Invalid(format!("tools: {msg}"));
    let list = tools
        .as_array()
        .ok_or_else(|| bad(format!("expected an array of tools, found {}", kind(tools))))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let obj = tool
            .as_object()
            .ok_or_else(|| bad(format!("[{i}] is {}, not an object", kind(tool))))?;
        match obj.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(t) => return Err(bad(format!("[{i}]: type `{t}` (only `function`)"))),
            None => return Err(bad(format!("[{i}]: missing \"type\": \"function\""))),
        }
        let f = obj
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(format!("[{i}]: missing the \"function\" object")))?;
        let name = match f.get("name").and_then(Value::as_str) {
            Some(n) if !n.trim().is_empty() => n,
            _ => return Err(bad(format!("[{i}]: the function has no \"name\""))),
        };
        let description = match f.get("description") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s,
            Some(v) => {
                return Err(bad(format!(
                    "[{i}] `{name}`: \"description\" is {}, not a string",
                    kind(v)
                )))
            }
        };
        let parameters = match f.get("parameters") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(v) => {
                return Err(bad(format!(
                    "[{i}] `{name}`: \"parameters\" is {}, not a JSON Schema object",
                    kind(v)
                )))
            }
        };
        let mut function = Map::new();
        function.insert("name".into(), Value::String(name.to_owned()));
        function.insert("description".into(), Value::String(description.to_owned()));
        function.insert("parameters".into(), parameters);
        let mut t = Map::new();
        t.insert("type".into(), Value::String("function".into()));
        t.insert("function".into(), Value::Object(function));
        out.push(Value::Object(t));
    }
    Ok(Value::Array(out))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Split a reply into content and tool calls the way `family` writes them. Never fails:
/// what does not parse stays content.
pub fn parse_tool_calls(text: &str, family: ToolFamily) -> ParsedReply {
    let (content, calls) = match family {
        ToolFamily::Hermes => hermes(text),
        ToolFamily::Llama3 => llama3(text),
        ToolFamily::Mistral => mistral(text),
        ToolFamily::None => (text.to_owned(), Vec::new()),
    };
    let tool_calls = calls
        .into_iter()
        .enumerate()
        .map(|(i, (name, arguments))| ToolCall {
            id: format!("call_{i}"),
            name,
            arguments,
        })
        .collect();
    ParsedReply {
        content,
        tool_calls,
    }
}

type Calls = Vec<(String, String)>;

/// `{"name": "...", <args_key>: {...}}` (the arguments may also be JSON text of an object, as
/// some models write them): the name and the arguments as compact JSON text.
fn call_of(v: &Value, args_keys: &[&str]) -> Option<(String, String)> {
    let obj = v.as_object()?;
    let name = obj.get("name")?.as_str()?.trim();
    if name.is_empty() {
        return None;
    }
    let args = match args_keys.iter().find_map(|k| obj.get(*k)) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return None,
        },
        Some(_) => return None,
    };
    Some((name.to_owned(), args.to_string()))
}

/// The JSON values at the start of `s`, one after another (separated by white space or `sep`),
/// and the byte length they cover; stops at the first thing that is not one.
fn json_values(s: &str, sep: char) -> (Vec<Value>, usize) {
    let mut values = Vec::new();
    let mut end = 0;
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == sep);
        if !trimmed.starts_with(['{', '[']) {
            break;
        }
        let offset = s.len() - trimmed.len();
        let mut it = serde_json::Deserializer::from_str(trimmed).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                values.push(v);
                end = offset + used;
                rest = &s[end..];
            }
            _ => break,
        }
    }
    (values, end)
}

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";

fn hermes(text: &str) -> (String, Calls) {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(HERMES_OPEN) {
        let body_start = start + HERMES_OPEN.len();
        let (body, after) = match rest[body_start..].find(HERMES_CLOSE) {
            Some(e) => (
                &rest[body_start..body_start + e],
                body_start + e + HERMES_CLOSE.len(),
            ),
            // Unterminated (the reply ended at a stop token or the length limit).
            None => (&rest[body_start..], rest.len()),
        };
        let parsed = serde_json::from_str::<Value>(body.trim())
            .ok()
            .and_then(|v| call_of(&v, &["arguments", "parameters"]));
        match parsed {
            Some(c) => {
                content.push_str(&rest[..start]);
                calls.push(c);
            }
            None => content.push_str(&rest[..after]),
        }
        rest = &rest[after..];
    }
    content.push_str(rest);
    if calls.is_empty() {
        return hermes_untagged(text).unwrap_or_else(|| (text.to_owned(), calls));
    }
    (content.trim().to_owned(), calls)
}

/// A call without `<tool_call>` tags, as llama.cpp's Hermes parser also takes it (Qwen2.5-Coder
/// writes a fenced block): `{"name": ..., "arguments": {...}}` objects in a ```` ```json ````
/// (or ```` ```xml ```` / bare ```` ``` ````) block, or as the whole reply. Only objects with a
/// name and arguments count; anything else in the block and it is content.
fn hermes_untagged(text: &str) -> Option<(String, Calls)> {
    let calls_in = |s: &str| -> Option<(Calls, usize)> {
        let (values, end) = json_values(s, ',');
        let calls: Calls = values
            .iter()
            .map(|v| {
                v.get("arguments")
                    .or_else(|| v.get("parameters"))
                    .and_then(|_| call_of(v, &["arguments", "parameters"]))
            })
            .collect::<Option<_>>()?;
        (!calls.is_empty()).then_some((calls, end))
    };
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let (calls, end) = calls_in(trimmed)?;
        return trimmed[end..]
            .trim()
            .is_empty()
            .then(|| (String::new(), calls));
    }
    let fence = text.find("```")?;
    let after = &text[fence + 3..];
    let body = ["json", "xml", ""].iter().find_map(|lang| {
        after
            .strip_prefix(lang)
            .filter(|b| b.trim_start().starts_with('{'))
    })?;
    let (calls, end) = calls_in(body)?;
    let tail = body[end..].trim_start();
    let tail = match tail.strip_prefix("```") {
        Some(t) => t,
        None if tail.is_empty() => tail,
        None => return None,
    };
    let content = format!("{}{}", &text[..fence], tail);
    Some((content.trim().to_owned(), calls))
}

fn llama3(text: &str) -> (String, Calls) {
    let body = text.trim_start();
    let body = body.strip_prefix("<|python_tag|>").unwrap_or(body);
    let (values, end) = json_values(body, ';');
    if values.is_empty() || !body[end..].trim().is_empty() {
        return (text.to_owned(), Vec::new());
    }
    let calls: Option<Calls> = values
        .iter()
        .map(|v| call_of(v, &["parameters", "arguments"]))
        .collect();
    match calls {
        Some(c) => (String::new(), c),
        None => (text.to_owned(), Vec::new()),
    }
}

fn mistral(text: &str) -> (String, Calls) {
    const TAG: &str = "[TOOL_CALLS]";
    let Some(at) = text.find(TAG) else {
        return (text.to_owned(), Vec::new());
    };
    let before = text[..at].trim().to_owned();
    let mut calls = Vec::new();
    for part in text[at..].split(TAG).filter(|p| !p.trim().is_empty()) {
        let part = part.trim();
        let found: Option<Calls> = if part.starts_with('[') {
            // [{"name", "arguments"}, ...]
            let (values, end) = json_values(part, ',');
            match values.first() {
                Some(Value::Array(items)) if part[end..].trim().is_empty() => items
                    .iter()
                    .map(|v| call_of(v, &["arguments", "parameters"]))
                    .collect(),
                _ => None,
            }
        } else {
            // name[ARGS]{...}
            part.split_once("[ARGS]").and_then(|(name, args)| {
                let v = serde_json::from_str::<Value>(args.trim()).ok()?;
                let name = name.trim();
                (!name.is_empty() && v.is_object()).then(|| vec![(name.to_owned(), v.to_string())])
            })
        };
        match found {
            Some(c) => calls.extend(c),
            None => return (text.to_owned(), Vec::new()),
        }
    }
    (before, calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(r: &ParsedReply) -> Vec<(&str, &str, &str)> {
        r.tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect()
    }

    #[test]
    fn hermes_one_and_several() {
        let r = parse_tool_calls(
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>",
            ToolFamily::Hermes,
        );
        assert_eq!(r.content, "");
        assert_eq!(
            names(&r),
            [(
                "call_0",
                "get_weather",
                r#"{"city":"Paris","unit":"celsius"}"#
            )]
        );
        let r = parse_tool_calls(
            "Let me check.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>\n\
             <tool_call>\n{\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 3, \\\"b\\\": 4}\"}\n</tool_call>",
            ToolFamily::Hermes,
        );
        assert_eq!(r.content, "Let me check.");
        assert_eq!(
            names(&r),
            [
                ("call_0", "add", r#"{"a":1,"b":2}"#),
                ("call_1", "add", r#"{"a":3,"b":4}"#)
            ]
        );
        // Unterminated at the end of the reply: still a call.
        let r = parse_tool_calls(
            "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}",
            ToolFamily::Hermes,
        );
        assert_eq!(names(&r), [("call_0", "now", "{}")]);
    }

    #[test]
    fn hermes_untagged_like_llama_cpp() {
        // Qwen2.5-Coder's habit: a fenced JSON block.
        let r = parse_tool_calls(
            "```json\n{\n  \"name\": \"add\",\n  \"arguments\": {\"a\": 1, \"b\": 2}\n}\n```",
            ToolFamily::Hermes,
        );
        assert_eq!(names(&r), [("call_0", "add", r#"{"a":1,"b":2}"#)]);
        assert_eq!(r.content, "");
        let r = parse_tool_calls(
            "Sure.\n```\n{\"name\": \"f\", \"arguments\": {}}\n```\nDone.",
            ToolFamily::Hermes,
        );
        assert_eq!(names(&r), [("call_0", "f", "{}")]);
        assert_eq!(r.content, "Sure.\n\nDone.");
        let r = parse_tool_calls(
            "{\"name\": \"f\", \"arguments\": {\"x\": 1}}",
            ToolFamily::Hermes,
        );
        assert_eq!(names(&r), [("call_0", "f", r#"{"x":1}"#)]);
        // JSON that is not a call, or a call followed by more JSON text: content.
        for text in [
            "```json\n{\"name\": \"Ann\", \"age\": 3}\n```",
            "{\"name\": \"f\"}",
            "```json\n{\"name\": \"f\", \"arguments\": {}} trailing\n```",
            "```json\n{\"name\": \"f\", \"arguments\": {\n```",
            "{\"name\": \"f\", \"arguments\": {}} and so on",
        ] {
            let r = parse_tool_calls(text, ToolFamily::Hermes);
            assert!(r.tool_calls.is_empty(), "{text}");
            assert_eq!(r.content, text);
        }
    }

    #[test]
    fn hermes_malformed_is_content() {
        for text in [
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>",
            "<tool_call>{\"arguments\": {}}</tool_call>",
            "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
            "<tool_call>not json",
            "no call here",
            "",
        ] {
            let r = parse_tool_calls(text, ToolFamily::Hermes);
            assert!(r.tool_calls.is_empty(), "{text}");
            assert_eq!(r.content, text);
        }
        // A good call next to a broken one: the call, the broken block stays content.
        let r = parse_tool_calls(
            "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{bad}</tool_call>",
            ToolFamily::Hermes,
        );
        assert_eq!(names(&r), [("call_0", "a", "{}")]);
        assert_eq!(r.content, "<tool_call>{bad}</tool_call>");
    }

    #[test]
    fn llama3_json_calls() {
        let r = parse_tool_calls(
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
            ToolFamily::Llama3,
        );
        assert_eq!(names(&r), [("call_0", "get_weather", r#"{"city":"Oslo"}"#)]);
        let r = parse_tool_calls(
            "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": 1}}; {\"type\": \"function\", \"name\": \"b\", \"parameters\": {}}",
            ToolFamily::Llama3,
        );
        assert_eq!(
            names(&r),
            [("call_0", "a", r#"{"x":1}"#), ("call_1", "b", "{}")]
        );
        assert_eq!(r.content, "");
        for text in [
            "The answer is {\"name\": \"a\", \"parameters\": {}}",
            "{\"name\": \"a\", \"parameters\": {}} and more text",
            "{\"name\": \"a\", \"parameters\": {",
            "{\"nom\": \"a\"}",
            "Hello!",
        ] {
            let r = parse_tool_calls(text, ToolFamily::Llama3);
            assert!(r.tool_calls.is_empty(), "{text}");
            assert_eq!(r.content, text);
        }
    }

    #[test]
    fn mistral_calls() {
        let r = parse_tool_calls(
            "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"q\": \"x\"}}, {\"name\": \"b\", \"arguments\": {}}]",
            ToolFamily::Mistral,
        );
        assert_eq!(
            names(&r),
            [("call_0", "a", r#"{"q":"x"}"#), ("call_1", "b", "{}")]
        );
        let r = parse_tool_calls("[TOOL_CALLS]a[ARGS]{\"q\": 1}", ToolFamily::Mistral);
        assert_eq!(names(&r), [("call_0", "a", r#"{"q":1}"#)]);
        let bad = "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": ";
        let r = parse_tool_calls(bad, ToolFamily::Mistral);
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.content, bad);
        let r = parse_tool_calls("[TOOL_CALLS]", ToolFamily::Mistral);
        assert!(r.tool_calls.is_empty());
    }

    #[test]
    fn families_from_templates() {
        assert_eq!(
            ToolFamily::detect("{{- '<tool_call>\\n' }}"),
            ToolFamily::Hermes
        );
        assert_eq!(
            ToolFamily::detect("{{- '<|python_tag|>' }}<|eot_id|>"),
            ToolFamily::Llama3
        );
        assert_eq!(
            ToolFamily::detect("\"parameters\": d}}<|eot_id|>"),
            ToolFamily::Llama3
        );
        assert_eq!(ToolFamily::detect("[TOOL_CALLS]"), ToolFamily::Mistral);
        assert_eq!(ToolFamily::detect("{{ m.content }}"), ToolFamily::None);
        let r = parse_tool_calls("<tool_call>{}</tool_call>", ToolFamily::None);
        assert_eq!(r.content, "<tool_call>{}</tool_call>");
    }

    #[test]
    fn tools_are_normalized_like_llama_cpp() {
        let t = json!([{"type": "function", "function": {"parameters": {"type": "object"}, "name": "f", "strict": true}}]);
        assert_eq!(
            normalize_tools(&t).unwrap().to_string(),
            r#"[{"type":"function","function":{"name":"f","description":"","parameters":{"type":"object"}}}]"#
        );
        for (bad, msg) in [
            (json!({"a": 1}), "expected an array"),
            (json!([1]), "[0] is a number"),
            (json!([{"function": {"name": "f"}}]), "missing \"type\""),
            (json!([{"type": "code_interpreter"}]), "only `function`"),
            (json!([{"type": "function"}]), "\"function\" object"),
            (
                json!([{"type": "function", "function": {"name": ""}}]),
                "no \"name\"",
            ),
            (
                json!([{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
                "not a JSON Schema",
            ),
        ] {
            let e = normalize_tools(&bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
    }

    #[test]
    fn tool_call_wire_shape() {
        let c = ToolCall {
            id: "call_0".into(),
            name: "f".into(),
            arguments: r#"{"a":1}"#.into(),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            json!({"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}})
        );
        assert_eq!(serde_json::from_value::<ToolCall>(v).unwrap(), c);
        let obj: ToolCall = serde_json::from_value(
            json!({"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}),
        )
        .unwrap();
        assert_eq!(obj.arguments, r#"{"a":1}"#);
        assert!(serde_json::from_value::<ToolCall>(
            json!({"type": "x", "function": {"name": "f"}})
        )
        .is_err());
        assert_eq!(
            c.template_value(),
            json!({"type": "function", "function": {"name": "f", "arguments": {"a": 1}}, "id": "call_0"})
        );
    }
}
