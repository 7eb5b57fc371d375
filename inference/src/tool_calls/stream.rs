//! Tool calls while the reply streams: [`ToolCallStream`] turns the reply's pieces into
//! OpenAI-style deltas — content as it comes, and for `<tool_call>` blocks (the Hermes family:
//! Qwen2.5/3, Hermes, SmolLM3) the call's name as soon as it is written, then its arguments
//! text piece by piece. Nothing is sent that a later piece could turn into something else: text
//! that may be the start of `<tool_call>`, the object's closing `}`, a reply that starts like an
//! untagged call (`{` or a ```` ``` ```` fence) are held until they are decided.
//!
//! The deltas agree with [`super::parse_tool_calls`] on the whole reply: [`ToolCallStream::finish`]
//! parses it and sends what the stream could not (the calls of other families, untagged calls,
//! a block whose header was not `{"name": ..., "arguments": ...}`). One thing a stream cannot
//! take back: a call whose name was sent and whose arguments then turn out malformed stays a
//! call in the stream, while the parse of the whole reply counts that block as content.

use serde::{Deserialize, Serialize};

use super::{parse_tool_calls, ToolFamily, HERMES_CLOSE, HERMES_OPEN};

/// One step of a streamed reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolDelta {
    /// Reply text that is not a call.
    Content { text: String },
    /// Call `index` starts (ids are `call_{index}`, as [`super::parse_tool_calls`] gives them).
    Call { index: usize, name: String },
    /// More of call `index`'s arguments (JSON text; the pieces joined are the arguments).
    Arguments { index: usize, text: String },
}

enum At {
    /// Outside a call: `held` is text not sent yet.
    Text,
    /// Inside `<tool_call>`, before its name and `"arguments":` are known.
    Header,
    /// Inside a call's arguments.
    Arguments,
    /// Inside a block whose header is not the usual one: sent whole by `finish`.
    Opaque,
}

/// Follows one reply (see the module documentation).
pub struct ToolCallStream {
    family: ToolFamily,
    at: At,
    /// Text received and not sent yet (its meaning depends on `at`).
    held: String,
    /// The whole reply so far.
    text: String,
    /// Content sent so far.
    sent_content: String,
    /// Calls started so far.
    calls: usize,
}

impl ToolCallStream {
    pub fn new(family: ToolFamily) -> ToolCallStream {
        ToolCallStream {
            family,
            at: At::Text,
            held: String::new(),
            text: String::new(),
            sent_content: String::new(),
            calls: 0,
        }
    }

    /// The deltas `piece` makes certain.
    pub fn push(&mut self, piece: &str) -> Vec<ToolDelta> {
        self.text.push_str(piece);
        self.held.push_str(piece);
        if self.family != ToolFamily::Hermes {
            // Other families write calls as the whole reply: decided at the end.
            return Vec::new();
        }
        let mut out = Vec::new();
        loop {
            let progressed = match self.at {
                At::Text => self.text_step(&mut out),
                At::Header => self.header_step(&mut out),
                At::Arguments => self.arguments_step(&mut out),
                At::Opaque => false,
            };
            if !progressed {
                return out;
            }
        }
    }

    fn text_step(&mut self, out: &mut Vec<ToolDelta>) -> bool {
        if let Some(i) = self.held.find(HERMES_OPEN) {
            let before: String = self.held[..i].to_owned();
            self.send_content(&before, out);
            self.held.drain(..i + HERMES_OPEN.len());
            self.at = At::Header;
            return true;
        }
        // A reply that starts like an untagged call, or a code fence: wait for the end. (The
        // reply's first visible character: in what was sent, else in what is held.)
        let first = self.sent_content.trim_start().chars().next();
        let first = first.or_else(|| self.held.trim_start().chars().next());
        if first == Some('{') || self.held.contains("```") {
            return false;
        }
        let keep = partial_suffix(&self.held, HERMES_OPEN);
        let keep = keep.max(self.held.len() - self.held.trim_end_matches('`').len());
        let send: String = self.held[..self.held.len() - keep].to_owned();
        self.send_content(&send, out);
        self.held.drain(..send.len());
        false
    }

    fn header_step(&mut self, out: &mut Vec<ToolDelta>) -> bool {
        match call_header(&self.held) {
            Header::Incomplete => {
                if self.held.contains(HERMES_CLOSE) {
                    self.at = At::Opaque;
                }
                false
            }
            Header::Other => {
                self.at = At::Opaque;
                false
            }
            Header::Call { name, len } => {
                out.push(ToolDelta::Call {
                    index: self.calls,
                    name,
                });
                self.held.drain(..len);
                self.at = At::Arguments;
                true
            }
        }
    }

    fn arguments_step(&mut self, out: &mut Vec<ToolDelta>) -> bool {
        let index = self.calls;
        if let Some(end) = self.held.find(HERMES_CLOSE) {
            // The arguments end at the object's closing brace before the tag.
            let body = self.held[..end].trim_end();
            let args = body.strip_suffix('}').unwrap_or(body).trim_end();
            if !args.is_empty() {
                out.push(ToolDelta::Arguments {
                    index,
                    text: args.to_owned(),
                });
            }
            self.held.drain(..end + HERMES_CLOSE.len());
            self.calls += 1;
            self.at = At::Text;
            return true;
        }
        // Hold back from the last `}` if only white space and part of the closing tag follow
        // it (it may be the object's end), and any partial closing tag.
        let mut keep = partial_suffix(&self.held, HERMES_CLOSE);
        let body = &self.held[..self.held.len() - keep];
        let ws = body.len() - body.trim_end().len();
        keep += ws;
        if body.trim_end().ends_with('}') {
            keep += 1;
        }
        let send = self.held.len() - keep;
        if send > 0 {
            out.push(ToolDelta::Arguments {
                index,
                text: self.held[..send].to_owned(),
            });
            self.held.drain(..send);
        }
        false
    }

    fn send_content(&mut self, text: &str, out: &mut Vec<ToolDelta>) {
        if text.is_empty() {
            return;
        }
        self.sent_content.push_str(text);
        out.push(ToolDelta::Content {
            text: text.to_owned(),
        });
    }

    /// The rest of the reply: what the parse of the whole reply has and the stream did not
    /// send yet (calls it could not follow, held-back content).
    pub fn finish(mut self) -> Vec<ToolDelta> {
        let parsed = parse_tool_calls(&self.text, self.family);
        let mut out = Vec::new();
        // Content: what the parse keeps that was not sent (it may trim the reply).
        let sent = self.sent_content.trim_start();
        let rest = parsed
            .content
            .strip_prefix(sent)
            .or_else(|| parsed.content.strip_prefix(sent.trim_end()))
            .map(str::to_owned);
        if let Some(rest) = rest {
            self.send_content(&rest, &mut out);
        }
        for (index, c) in parsed.tool_calls.iter().enumerate().skip(self.calls) {
            out.push(ToolDelta::Call {
                index,
                name: c.name.clone(),
            });
            out.push(ToolDelta::Arguments {
                index,
                text: c.arguments.clone(),
            });
        }
        out
    }
}

/// The length of the longest suffix of `s` that is a proper prefix of `tag`.
fn partial_suffix(s: &str, tag: &str) -> usize {
    (1..tag.len().min(s.len() + 1))
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

enum Header {
    Incomplete,
    /// `{"name": "<name>", "arguments": ` — `len` bytes.
    Call {
        name: String,
        len: usize,
    },
    Other,
}

/// Match the start of a call object: white space, `{`, `"name"`, `:`, a JSON string, `,`,
/// `"arguments"` (or `"parameters"`), `:`, white space.
fn call_header(s: &str) -> Header {
    let mut rest = s;
    let mut name = None;
    let steps: [&str; 8] = ["{", "\"name\"", ":", "NAME", ",", "ARGS", ":", ""];
    for step in steps {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Header::Incomplete;
        }
        match step {
            "NAME" => {
                let Some(body) = rest.strip_prefix('"') else {
                    return Header::Other;
                };
                let mut end = None;
                let mut escaped = false;
                for (i, c) in body.char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    return Header::Incomplete;
                };
                match serde_json::from_str::<String>(&rest[..end + 2]) {
                    Ok(n) if !n.trim().is_empty() => name = Some(n.trim().to_owned()),
                    _ => return Header::Other,
                }
                rest = &body[end + 1..];
            }
            "ARGS" => {
                let key = ["\"arguments\"", "\"parameters\""]
                    .into_iter()
                    .find(|k| rest.starts_with(k));
                match key {
                    Some(k) => rest = &rest[k.len()..],
                    None if "\"arguments\"".starts_with(rest)
                        || "\"parameters\"".starts_with(rest) =>
                    {
                        return Header::Incomplete
                    }
                    None => return Header::Other,
                }
            }
            "" => {
                // The arguments' first character must be there (so the white space before it
                // is consumed, and an arguments value that is not an object falls back).
                return match rest.chars().next() {
                    Some('{') => Header::Call {
                        name: name.unwrap_or_default(),
                        len: s.len() - rest.len(),
                    },
                    _ => Header::Other,
                };
            }
            lit => match rest.strip_prefix(lit) {
                Some(r) => rest = r,
                None if lit.starts_with(rest) => return Header::Incomplete,
                None => return Header::Other,
            },
        }
    }
    Header::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Stream `text` in pieces of `n` bytes (on char boundaries): the deltas, folded into
    /// (content, calls as (name, arguments)).
    fn stream(text: &str, n: usize, family: ToolFamily) -> (String, Vec<(String, String)>) {
        let mut s = ToolCallStream::new(family);
        let mut deltas = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let mut j = (i + n).min(text.len());
            while !text.is_char_boundary(j) {
                j += 1;
            }
            deltas.extend(s.push(&text[i..j]));
            i = j;
        }
        deltas.extend(s.finish());
        let mut content = String::new();
        let mut calls: Vec<(String, String)> = Vec::new();
        for d in deltas {
            match d {
                ToolDelta::Content { text } => content.push_str(&text),
                ToolDelta::Call { index, name } => {
                    assert_eq!(index, calls.len());
                    calls.push((name, String::new()));
                }
                ToolDelta::Arguments { index, text } => calls[index].1.push_str(&text),
            }
        }
        (content, calls)
    }

    fn same_as_parse(text: &str, family: ToolFamily) {
        let want = parse_tool_calls(text, family);
        for n in [1, 2, 3, 7, 1000] {
            let (content, calls) = stream(text, n, family);
            assert_eq!(
                content.trim(),
                want.content.trim(),
                "content, pieces of {n}: {text:?}"
            );
            assert_eq!(
                calls.len(),
                want.tool_calls.len(),
                "calls, pieces of {n}: {text:?}"
            );
            for ((name, args), w) in calls.iter().zip(&want.tool_calls) {
                assert_eq!(name, &w.name);
                let a: Value =
                    serde_json::from_str(args).unwrap_or_else(|e| panic!("{e}: {args:?} ({n})"));
                let b: Value = serde_json::from_str(&w.arguments).expect("parsed arguments");
                assert_eq!(a, b, "arguments, pieces of {n}: {text:?}");
            }
        }
    }

    #[test]
    fn streamed_deltas_agree_with_the_parse_of_the_whole_reply() {
        for text in [
            "Hello there, <b>friend</b> { not a call }",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"n\": {\"a\": [1, \"}\"]}}}\n</tool_call>",
            "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": \"</tool\"}}\n</tool_call>",
            "<tool_call>\n{\"arguments\": {\"x\": 1}, \"name\": \"late\"}\n</tool_call>",
            "{\"name\": \"add\", \"arguments\": {\"a\": 1}}",
            "Sure:\n```json\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n```",
            "ends with a half tag <tool_",
            "naïve ünïcödé <tool_call>\n{\"name\": \"é\", \"arguments\": {\"ü\": \"ö\"}}\n</tool_call>",
        ] {
            same_as_parse(text, ToolFamily::Hermes);
        }
        same_as_parse(
            "{\"name\": \"add\", \"parameters\": {\"a\": 1}}",
            ToolFamily::Llama3,
        );
        same_as_parse("just text", ToolFamily::Llama3);
    }

    #[test]
    fn names_and_arguments_arrive_before_the_call_ends() {
        let mut s = ToolCallStream::new(ToolFamily::Hermes);
        assert!(s.push("<tool_call>\n{\"name\": \"get_").is_empty());
        let d = s.push("weather\", \"arguments\": {\"city\"");
        assert_eq!(
            d,
            vec![
                ToolDelta::Call {
                    index: 0,
                    name: "get_weather".into()
                },
                ToolDelta::Arguments {
                    index: 0,
                    text: "{\"city\"".into()
                }
            ]
        );
        // The last closing brace waits: it may be the object's, not the arguments'.
        let d = s.push(": \"Paris\"}}");
        assert_eq!(
            d,
            vec![ToolDelta::Arguments {
                index: 0,
                text: ": \"Paris\"}".into()
            }]
        );
        assert!(s.push("\n</tool_call>").is_empty());
        assert!(s.finish().is_empty());
    }
}
