//! `chord chat`: an interactive multi-turn chat on stdin/stdout over one engine session, so each
//! turn evaluates only the tokens its KV cache does not hold yet.
//!
//! One user message per line; `/reset` starts over, `/regen` replaces the last reply, `/edit N
//! TEXT` replaces user message N (1 = the first) and drops what follows it. With `--json` every
//! turn prints one line: `{"turn", "prompt_tokens", "evaluated_tokens", "reused_tokens",
//! "shifted_tokens", "dropped_tokens", "dropped_messages", "tokens", "ttft_ms", "prefill_tok_s",
//! "decode_tok_s", "stop", "text"}`; otherwise the reply streams and a summary goes to stderr.
//! `--no-reuse` recomputes the whole conversation every turn (the reference the tests compare
//! with). `--tools FILE` renders OpenAI tools with the template and parses each reply into
//! `tool_calls` (in the JSON line: `"content"` and `"tool_calls"`, ids unique in the
//! conversation); `/tool TEXT` answers the last reply's first unanswered call.

use std::io::{BufRead, Write};

use inference::chat::ChatMessage;
use inference::conversation::{messages_out_of_view_with_tools, ChatPrompt};
use inference::engine::{block_on, Session, SessionOptions};
use inference::model::Model;
use inference::quant::Activations;
use inference::tool_calls::parse_tool_calls;
use serde_json::json;

use crate::cli::{
    activations, backend_pref, generate_params, load, threads, Args, CliResult, SAMPLING_FLAGS,
};

/// What a line of input asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Say(String),
    Reset,
    Regen,
    /// Replace user message N (1-based) with the text.
    Edit(usize, String),
    /// A tool's result for the last reply's first unanswered call.
    Tool(String),
}

fn parse(line: &str) -> CliResult<Option<Command>> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    let cmd = match line.split_once(' ').map_or((line, ""), |(c, r)| (c, r)) {
        ("/reset", _) => Command::Reset,
        ("/regen", _) => Command::Regen,
        ("/tool", rest) => Command::Tool(rest.to_owned()),
        ("/edit", rest) => {
            let (n, text) = rest
                .trim_start()
                .split_once(' ')
                .unwrap_or((rest.trim(), ""));
            let n: usize = n
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("/edit: `{n}` is not a message number (1, 2, ...)"))?;
            if text.trim().is_empty() {
                return Err("/edit N TEXT: the new text is missing".into());
            }
            Command::Edit(n, text.to_owned())
        }
        _ => Command::Say(line.to_owned()),
    };
    Ok(Some(cmd))
}

/// The conversation: the system prompt, then user and assistant messages in turn.
struct Chat {
    messages: Vec<ChatMessage>,
    n_system: usize,
}

impl Chat {
    /// Apply a command; `Ok(false)` when there is nothing to reply to.
    fn apply(&mut self, cmd: Command) -> CliResult<bool> {
        match cmd {
            Command::Say(text) => self.messages.push(ChatMessage::user(text)),
            Command::Tool(text) => {
                let id = self.pending_call().ok_or(
                    "/tool: the last reply called no tool (or all its calls are answered)",
                )?;
                self.messages
                    .push(ChatMessage::tool_result(id.0, Some(id.1), text));
            }
            Command::Reset => {
                self.messages.truncate(self.n_system);
                return Ok(false);
            }
            Command::Regen => {
                if self.messages.last().is_some_and(|m| m.role == "assistant") {
                    self.messages.pop();
                }
                if self.messages.last().is_none_or(|m| m.role != "user") {
                    return Err("/regen: there is no reply to regenerate yet".into());
                }
            }
            Command::Edit(n, text) => {
                let at = self
                    .messages
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.role == "user")
                    .nth(n - 1)
                    .map(|(i, _)| i)
                    .ok_or_else(|| format!("/edit: there is no user message {n}"))?;
                self.messages.truncate(at);
                self.messages.push(ChatMessage::user(text));
            }
        }
        Ok(true)
    }

    /// (id, name) of the first call of the last assistant message that no `tool` message
    /// after it answers.
    fn pending_call(&self) -> Option<(String, String)> {
        let at = self.messages.iter().rposition(|m| m.role == "assistant")?;
        let answered: Vec<&str> = self.messages[at + 1..]
            .iter()
            .filter(|m| m.role == "tool")
            .filter_map(|m| m.tool_call_id.as_deref())
            .collect();
        self.messages[at]
            .tool_calls
            .as_ref()?
            .iter()
            .find(|c| !answered.contains(&c.id.as_str()))
            .map(|c| (c.id.clone(), c.name.clone()))
    }
}

pub fn chat(raw: &[String]) -> CliResult<()> {
    let mut allowed = vec![
        "--model",
        "--system",
        "--json",
        "--no-reuse",
        "--ctx-size",
        "--ignore-eos",
        "--backend",
        "--threads",
        "--activations",
        "--tools",
    ];
    allowed.extend_from_slice(SAMPLING_FLAGS);
    let a = Args::parse(raw, &allowed)?;
    let tools = crate::cli::tools(&a)?;
    backend_pref(&a)?;
    let threads = threads(&a)?;
    let act = activations(&a, Activations::Q8)?;
    let base = generate_params(&a, 256)?;
    let json_out = a.flag("--json");
    let reuse = !a.flag("--no-reuse");
    let (loaded, _) = load(&a, false)?;
    let model: &Model = &loaded.model;
    let n_ctx = a.num("--ctx-size", 2048usize)?.min(model.hp.n_ctx_train);
    let opts = SessionOptions {
        n_ctx,
        threads,
        activations: act,
    };
    let mut session = Session::new(&loaded, &opts).map_err(|e| e.to_string())?;
    let mut chat = Chat {
        messages: Vec::new(),
        n_system: 0,
    };
    if let Some(s) = a.get("--system") {
        chat.messages.push(ChatMessage::system(s));
        chat.n_system = 1;
    }
    let stdin = std::io::stdin();
    let mut turn = 0u64;
    let mut n_calls = 0usize;
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let cmd = match parse(&line) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        let reset = cmd == Command::Reset;
        match chat.apply(cmd) {
            Ok(true) => {}
            Ok(false) => {
                if reset {
                    session.reset();
                    eprintln!("[conversation reset]");
                }
                continue;
            }
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        }
        turn += 1;
        let prompt = ChatPrompt::with_tools(model, &chat.messages, tools.as_ref())
            .map_err(|e| e.to_string())?;
        if !reuse {
            session.reset();
        }
        let mut params = base.clone();
        params.keep = Some(prompt.keep);
        params.sampler.seed = base.sampler.seed.wrapping_add(turn - 1);
        let mut stdout = std::io::stdout();
        let mut print = |_: Option<u32>, piece: &str| {
            if !json_out {
                let _ = stdout.write_all(piece.as_bytes());
                let _ = stdout.flush();
            }
            true
        };
        let g = block_on(session.generate(&prompt.tokens, &params, &mut print))
            .map_err(|e| e.to_string())?;
        let dropped_messages = messages_out_of_view_with_tools(
            model,
            &chat.messages,
            tools.as_ref(),
            &prompt.tokens,
            session.keep(),
            session.dropped(),
        )
        .map_err(|e| e.to_string())?;
        let reply = tools.as_ref().map(|_| {
            let mut r = parse_tool_calls(&g.text, model.chat.tool_family());
            for c in &mut r.tool_calls {
                c.id = format!("call_{n_calls}");
                n_calls += 1;
            }
            r
        });
        match &reply {
            Some(r) if !r.tool_calls.is_empty() => chat.messages.push(
                ChatMessage::assistant_tool_calls(r.content.clone(), r.tool_calls.clone()),
            ),
            _ => chat.messages.push(ChatMessage::assistant(g.text.clone())),
        }
        if json_out {
            let mut out = json!({
                "turn": turn,
                "prompt_tokens": g.prompt_tokens,
                "evaluated_tokens": g.evaluated,
                "reused_tokens": g.reused,
                "shifted_tokens": g.shifted,
                "dropped_tokens": g.dropped,
                "dropped_messages": dropped_messages,
                "tokens": g.tokens,
                "ttft_ms": g.prefill_s * 1e3,
                "prefill_tok_s": g.prefill_tok_s(),
                "decode_tok_s": g.decode_tok_s(),
                "stop": g.stop.name(),
                "text": g.text,
            });
            if let (Some(r), Some(o)) = (&reply, out.as_object_mut()) {
                o.insert("content".into(), json!(r.content));
                o.insert("tool_calls".into(), json!(r.tool_calls));
            }
            println!("{out}");
        } else {
            println!();
            if let Some(r) = reply.as_ref().filter(|r| !r.tool_calls.is_empty()) {
                eprintln!("[tool_calls: {}]", json!(r.tool_calls));
            }
            let dropped = if dropped_messages > 0 {
                format!("; {dropped_messages} earlier message(s) out of the model's view")
            } else {
                String::new()
            };
            eprintln!(
                "[{} prompt tokens: {} reused, {} evaluated, first token after {:.0} ms; {} tokens at \
                 {:.1} tok/s; stop: {}{dropped}]",
                g.prompt_tokens,
                g.reused,
                g.evaluated,
                g.prefill_s * 1e3,
                g.tokens.len(),
                g.decode_tok_s(),
                g.stop.name()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse("  ").unwrap(), None);
        assert_eq!(
            parse("hi there\n").unwrap(),
            Some(Command::Say("hi there".into()))
        );
        assert_eq!(parse("/reset").unwrap(), Some(Command::Reset));
        assert_eq!(parse("/regen").unwrap(), Some(Command::Regen));
        assert_eq!(
            parse("/edit 2 new text").unwrap(),
            Some(Command::Edit(2, "new text".into()))
        );
        assert!(parse("/edit x y").is_err());
        assert!(parse("/edit 0 y").is_err());
        assert!(parse("/edit 1").is_err());
        assert_eq!(
            parse("/tool {\"t\": 1}").unwrap(),
            Some(Command::Tool("{\"t\": 1}".into()))
        );
    }

    #[test]
    fn tool_results_answer_pending_calls() {
        use inference::tool_calls::ToolCall;
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "f".into(),
            arguments: "{}".into(),
        };
        let mut c = Chat {
            messages: vec![ChatMessage::user("q")],
            n_system: 0,
        };
        assert!(c.apply(Command::Tool("x".into())).is_err());
        c.messages.push(ChatMessage::assistant_tool_calls(
            "",
            vec![call("call_0"), call("call_1")],
        ));
        assert!(c.apply(Command::Tool("a".into())).unwrap());
        assert!(c.apply(Command::Tool("b".into())).unwrap());
        assert!(c.apply(Command::Tool("c".into())).is_err());
        let ids: Vec<_> = c.messages[2..]
            .iter()
            .map(|m| {
                (
                    m.role.as_str(),
                    m.tool_call_id.as_deref(),
                    m.name.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("tool", Some("call_0"), Some("f")),
                ("tool", Some("call_1"), Some("f"))
            ]
        );
    }

    #[test]
    fn edits_and_regen_rewrite_the_conversation() {
        let mut c = Chat {
            messages: vec![ChatMessage::system("s")],
            n_system: 1,
        };
        assert!(c.apply(Command::Regen).is_err());
        c.apply(Command::Say("a".into())).unwrap();
        c.messages.push(ChatMessage::assistant("A"));
        c.apply(Command::Say("b".into())).unwrap();
        c.messages.push(ChatMessage::assistant("B"));
        assert!(c.apply(Command::Regen).unwrap());
        assert_eq!(c.messages.last().unwrap(), &ChatMessage::user("b"));
        c.messages.push(ChatMessage::assistant("B2"));
        assert!(c.apply(Command::Edit(1, "a2".into())).unwrap());
        assert_eq!(
            c.messages,
            vec![ChatMessage::system("s"), ChatMessage::user("a2")]
        );
        assert!(c.apply(Command::Edit(3, "x".into())).is_err());
        assert!(!c.apply(Command::Reset).unwrap());
        assert_eq!(c.messages, vec![ChatMessage::system("s")]);
    }
}
