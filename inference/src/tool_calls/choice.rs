//! OpenAI's `tool_choice`: `"auto"` (the model decides), `"none"` (no call: the tools are not
//! rendered), `"required"` (a call of any tool) and `{"type": "function", "function": {"name"}}`
//! (a call of that tool); one call either way.
//!
//! A required call is enforced with grammar-constrained sampling, like llama-server's: the reply
//! must be written the way the template's family writes calls ([`ToolFamily`]), with the name
//! one of the tools' names and the arguments matching that tool's `parameters` schema (where the
//! schema uses keywords the JSON-schema compiler does not implement, any JSON object), so the
//! reply always parses into `tool_calls`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{normalize_tools, ToolFamily};
use crate::error::{Error, Result};
use crate::grammar::json_schema::{literal, schema_to_gbnf, schema_to_gbnf_within};
use crate::grammar::Grammar;

/// Whether and which tool the reply must call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    #[default]
    Auto,
    None,
    Required,
    /// Exactly one call of the tool of this name.
    Function(String),
}

impl ToolChoice {
    /// From OpenAI's JSON: `"auto"`, `"none"`, `"required"` or `{"type": "function",
    /// "function": {"name": ...}}`. Errors are one line.
    pub fn from_openai(v: &Value) -> Result<ToolChoice> {
        let bad = |what: String| Error::Invalid(format!("tool_choice: {what}"));
        match v {
            Value::Null => Ok(ToolChoice::Auto),
            Value::String(s) => match s.as_str() {
                "auto" => Ok(ToolChoice::Auto),
                "none" => Ok(ToolChoice::None),
                "required" => Ok(ToolChoice::Required),
                other => Err(bad(format!(
                    "`{other}` (expected \"auto\", \"none\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}})"
                ))),
            },
            Value::Object(o) => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| bad("expected {\"type\": \"function\", \"function\": {\"name\": ...}}".into()))?;
                Ok(ToolChoice::Function(name.to_owned()))
            }
            _ => Err(bad("expected a string or an object".into())),
        }
    }

    /// A call is forced (`"required"` or a named function).
    pub fn forces_a_call(&self) -> bool {
        matches!(self, ToolChoice::Required | ToolChoice::Function(_))
    }
}

/// The grammar of a reply that is one tool call, as `family` writes it: a call of the named
/// tool, or of any of `tools` for `"required"` (one call, like llama-server without
/// `parallel_tool_calls`: a small model asked for "one or more" tends to repeat its call until
/// the token limit cuts it). `None` for `"auto"` / `"none"`. Errors (one line): a name not
/// among the tools, no tools, a template without a tool-call format.
pub fn forced_call_grammar(
    tools: &Value,
    family: ToolFamily,
    choice: &ToolChoice,
) -> Result<Option<Grammar>> {
    if !choice.forces_a_call() {
        return Ok(None);
    }
    let tools = normalize_tools(tools)?;
    let list = tools.as_array().map(Vec::as_slice).unwrap_or_default();
    let wanted: Vec<&Value> = match choice {
        ToolChoice::Function(name) => {
            let found: Vec<&Value> = list
                .iter()
                .filter(|t| t["function"]["name"].as_str() == Some(name))
                .collect();
            if found.is_empty() {
                let names: Vec<&str> = list
                    .iter()
                    .filter_map(|t| t["function"]["name"].as_str())
                    .collect();
                return Err(Error::Invalid(format!(
                    "tool_choice: no tool named `{name}` (the tools are: {})",
                    names.join(", ")
                )));
            }
            found
        }
        _ => list.iter().collect(),
    };
    if wanted.is_empty() {
        return Err(Error::Invalid(
            "tool_choice \"required\" needs at least one tool".into(),
        ));
    }
    let (args_key, open, close) = match family {
        ToolFamily::Hermes => ("arguments", "<tool_call>\n", "\n</tool_call>"),
        ToolFamily::Llama3 => ("parameters", "", ""),
        ToolFamily::Mistral => ("arguments", "[TOOL_CALLS][", "]"),
        ToolFamily::None => {
            return Err(Error::Invalid(
                "tool_choice: this model's chat template defines no tool-call format, so a call cannot be required"
                    .into(),
            ))
        }
    };
    let calls: Vec<Value> = wanted
        .iter()
        .map(|t| {
            let f = &t["function"];
            json!({
                "type": "object",
                "properties": {"name": {"const": f["name"]}, args_key: arguments_schema(&f["parameters"])},
                "required": ["name", args_key],
            })
        })
        .collect();
    let schema = if calls.len() == 1 {
        calls.into_iter().next().unwrap_or_default()
    } else {
        json!({ "anyOf": calls })
    };
    let gbnf = schema_to_gbnf_within(&schema, |call| {
        format!("{} {call} {}", literal(open), literal(close))
    })?;
    Grammar::gbnf(&gbnf).map(Some)
}

/// A tool's `parameters` as the call grammar uses them: the schema itself where the compiler
/// implements all of it, otherwise (or when it says nothing) any JSON object.
fn arguments_schema(parameters: &Value) -> Value {
    let any_object = json!({"type": "object"});
    let Some(p) = parameters.as_object().filter(|p| !p.is_empty()) else {
        return any_object;
    };
    let describes_an_object = p.get("type").is_none_or(|t| t == "object")
        && (p.contains_key("properties") || p.contains_key("type"));
    if describes_an_object && schema_to_gbnf(parameters).is_ok() {
        let mut p: Map<String, Value> = p.clone();
        p.insert("type".into(), "object".into());
        Value::Object(p)
    } else {
        any_object
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::TokenTable;
    use crate::tool_calls::parse_tool_calls;
    use std::sync::Arc;

    fn tools() -> Value {
        json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}}}},
        ])
    }

    /// Does `g` accept `text` as a whole? (Walks it through a matcher over a byte vocabulary.)
    fn accepts(g: Grammar, text: &str) -> bool {
        let table = Arc::new(TokenTable::bytes_for_tests());
        let mut m = Arc::new(g).matcher(&table);
        m.accept_str(text).is_ok() && m.can_end()
    }

    #[test]
    fn choices_parse_from_openai_json() {
        assert_eq!(
            ToolChoice::from_openai(&json!("required")).unwrap(),
            ToolChoice::Required
        );
        assert_eq!(
            ToolChoice::from_openai(&Value::Null).unwrap(),
            ToolChoice::Auto
        );
        assert_eq!(
            ToolChoice::from_openai(&json!({"type": "function", "function": {"name": "add"}}))
                .unwrap(),
            ToolChoice::Function("add".into())
        );
        for bad in [json!("always"), json!(3), json!({"type": "function"})] {
            let e = ToolChoice::from_openai(&bad).unwrap_err().to_string();
            assert!(e.contains("tool_choice") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_forced_call_is_written_the_family_way_and_parses() {
        let named = ToolChoice::Function("get_weather".into());
        let hermes = |c: &ToolChoice| {
            forced_call_grammar(&tools(), ToolFamily::Hermes, c)
                .unwrap()
                .unwrap()
        };
        let call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
        assert!(accepts(hermes(&named), call));
        assert!(!accepts(hermes(&named), "Sure! Let me check."));
        assert!(!accepts(
            hermes(&named),
            &call.replace("get_weather", "add")
        ));
        // Arguments follow the schema: `city` is required, `unit` one of its enum.
        assert!(!accepts(
            hermes(&named),
            &call.replace("\"city\": \"Oslo\"", "\"unit\": \"c\"")
        ));
        assert!(!accepts(
            hermes(&named),
            &call.replace("}}", ", \"unit\": \"k\"}}")
        ));
        // "required": any tool, one call; `add`'s schema has `minimum` → any object.
        let add = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": -1, \"b\": [1]}}\n</tool_call>";
        assert!(accepts(hermes(&ToolChoice::Required), add));
        assert!(accepts(hermes(&ToolChoice::Required), call));
        assert!(
            !accepts(hermes(&ToolChoice::Required), &format!("{call}\n{add}")),
            "one call"
        );
        assert!(!accepts(hermes(&named), add));

        let llama = forced_call_grammar(&tools(), ToolFamily::Llama3, &named)
            .unwrap()
            .unwrap();
        let text =
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\", \"unit\": \"c\"}}";
        assert!(accepts(llama, text));
        assert_eq!(
            parse_tool_calls(text, ToolFamily::Llama3).tool_calls[0].name,
            "get_weather"
        );

        let mistral = forced_call_grammar(&tools(), ToolFamily::Mistral, &ToolChoice::Required)
            .unwrap()
            .unwrap();
        let text = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]";
        assert!(accepts(mistral, text));
        assert_eq!(
            parse_tool_calls(text, ToolFamily::Mistral).tool_calls.len(),
            1
        );
    }

    #[test]
    fn impossible_choices_are_clear_errors() {
        let e = forced_call_grammar(
            &tools(),
            ToolFamily::Hermes,
            &ToolChoice::Function("nope".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no tool named `nope`") && e.contains("get_weather, add"),
            "{e}"
        );
        let e = forced_call_grammar(&json!([]), ToolFamily::Hermes, &ToolChoice::Required)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one tool"), "{e}");
        let e = forced_call_grammar(&tools(), ToolFamily::None, &ToolChoice::Required)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tool-call format"), "{e}");
        assert!(
            forced_call_grammar(&tools(), ToolFamily::Hermes, &ToolChoice::Auto)
                .unwrap()
                .is_none()
        );
    }
}
