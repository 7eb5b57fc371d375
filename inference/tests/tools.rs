//! Tool calls on Qwen2.5-Coder 1.5B against the golden prompt set of `tests/data/tools/`:
//! `cases.json` (two OpenAI tools, seven conversations: requests for either tool, and replies to
//! tool results) and `qwen2.5-coder-1.5b.json` (each rendered by llama.cpp's chat code,
//! `scripts/make-tools-golden.sh`).
//! - our rendering of every case (the model's own template, tools, `tool_calls` and `tool`
//!   messages) equals llama.cpp's byte for byte;
//! - greedy generation on every golden prompt gives a reply that parses into well-formed
//!   `tool_calls` (a known tool, arguments that are a JSON object with the required keys and
//!   allowed enum values) where a call is expected, and into content without calls after tool
//!   results (ignored by default: one to two minutes on 2 cores);
//! - `chord generate --tools --json` adds `content` and `tool_calls`; a bad tools file is one
//!   error line.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::io::Read;
use std::time::Instant;

use common::*;
use inference::chat::{ChatMessage, ChatTemplate};
use inference::engine::{block_on, GenerateParams};
use inference::gguf::GgufHeader;
use inference::quant::Activations;
use inference::tool_calls::{parse_tool_calls, ToolFamily};
use serde_json::Value;

const MODEL: &str = "qwen2.5-coder-1.5b-q4_k_m";

fn read_json(name: &str) -> Value {
    let p = data_dir().join("tools").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// (name, expected tool or "text", messages, llama.cpp's prompt)
type Case = (String, String, Vec<ChatMessage>, String);

fn cases() -> (Value, Vec<Case>) {
    let spec = read_json("cases.json");
    let golden = read_json("qwen2.5-coder-1.5b.json");
    let golden = golden["cases"].as_array().expect("golden cases");
    let list = spec["cases"].as_array().expect("cases");
    assert_eq!(list.len(), golden.len(), "regenerate the golden file");
    let out = list
        .iter()
        .zip(golden)
        .map(|(c, g)| {
            assert_eq!(c["name"], g["name"]);
            let msgs: Vec<ChatMessage> =
                serde_json::from_value(c["messages"].clone()).expect("messages");
            (
                c["name"].as_str().expect("name").to_owned(),
                c["expect"].as_str().expect("expect").to_owned(),
                msgs,
                g["prompt"].as_str().expect("prompt").to_owned(),
            )
        })
        .collect();
    (spec["tools"].clone(), out)
}

/// The model's chat template, from its GGUF header only.
fn template() -> ChatTemplate {
    let path = model_path(MODEL);
    let size = std::fs::metadata(&path).expect("model").len();
    let mut f = std::fs::File::open(&path).expect("open");
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut chunk).expect("read");
        assert!(n > 0, "the header did not end");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(h) = GgufHeader::parse(&buf, size).expect("header") {
            return ChatTemplate::from_metadata(&h.metadata).expect("template");
        }
    }
}

#[test]
fn qwen25_renders_tools_exactly_like_llama_cpp() {
    let (tools, cases) = cases();
    let t = template();
    assert_eq!(t.tool_family(), ToolFamily::Hermes);
    assert!(cases.len() >= 6);
    for (name, _, msgs, golden) in &cases {
        let ours = t
            .render_with_tools(msgs, Some(&tools), true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&ours, golden, "{name}: rendering differs from llama.cpp's");
    }
    // Without tools the template is the plain one (no tools section).
    let plain = t.render(&cases[0].2, true).expect("render");
    assert!(!plain.contains("<tools>"), "{plain}");
}

/// The required keys present, every key a declared property, enum values allowed.
fn check_arguments(tools: &Value, name: &str, args: &str) -> Result<(), String> {
    let tool = tools
        .as_array()
        .and_then(|a| a.iter().find(|t| t["function"]["name"] == name))
        .ok_or_else(|| format!("unknown tool `{name}`"))?;
    let params = &tool["function"]["parameters"];
    let v: Value =
        serde_json::from_str(args).map_err(|e| format!("arguments are not JSON: {e}"))?;
    let obj = v.as_object().ok_or("arguments are not an object")?;
    for r in params["required"].as_array().into_iter().flatten() {
        let k = r.as_str().unwrap_or_default();
        if !obj.contains_key(k) {
            return Err(format!("`{name}` misses required `{k}`: {args}"));
        }
    }
    for (k, val) in obj {
        let p = &params["properties"][k];
        if p.is_null() {
            return Err(format!("`{name}` has no parameter `{k}`: {args}"));
        }
        if let Some(allowed) = p["enum"].as_array() {
            if !allowed.contains(val) {
                return Err(format!("`{name}`: {k} = {val} is not one of {allowed:?}"));
            }
        }
        let ok = match p["type"].as_str() {
            Some("number") => val.is_number(),
            Some("string") => val.is_string(),
            _ => true,
        };
        if !ok {
            return Err(format!("`{name}`: {k} = {val} is not a {}", p["type"]));
        }
    }
    Ok(())
}

/// About 1–2 minutes on 2 cores (a 1.5B model, seven prompts): opt in with
/// `cargo test --release -p inference --test tools -- --ignored`.
#[test]
#[ignore = "slow: Qwen2.5-Coder 1.5B generation (run with --ignored)"]
fn qwen25_coder_greedy_replies_are_well_formed_tool_calls() {
    let (tools, cases) = cases();
    let model = load_model(MODEL);
    let family = model.chat.tool_family();
    // One session: the prompts share the system turn with the tools, evaluated once.
    let mut session = cpu_session(&model, 1024, 2, Activations::Q8);
    let params = GenerateParams {
        max_tokens: 80,
        ..Default::default()
    };
    let t0 = Instant::now();
    let (mut calls, mut failures) = (0, Vec::new());
    for (name, expect, _, golden) in &cases {
        let prompt = model.tokenizer.encode(golden, true);
        let mut sink = |_: Option<u32>, _: &str| true;
        let g = block_on(session.generate(&prompt, &params, &mut sink)).expect("generation");
        let reply = parse_tool_calls(&g.text, family);
        eprintln!(
            "{name}: {:?} {:?} -> {:?}",
            g.stop, g.text, reply.tool_calls
        );
        // After tool results the reply is text (what a 1.5B model makes of them is not judged
        // here; no call may be made up from it).
        let verdict = if expect == "text" {
            if reply.tool_calls.is_empty() && !reply.content.trim().is_empty() {
                Ok(())
            } else {
                Err(format!("expected a text answer: {:?}", g.text))
            }
        } else if reply.tool_calls.is_empty() {
            Err(format!("no tool call: {:?}", g.text))
        } else {
            reply.tool_calls.iter().try_for_each(|c| {
                if c.name != *expect {
                    return Err(format!("called `{}`, expected `{expect}`", c.name));
                }
                check_arguments(&tools, &c.name, &c.arguments)
            })
        };
        match verdict {
            Ok(()) => calls += reply.tool_calls.len(),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "{} prompts, {calls} well-formed tool calls, {:.1} s",
        cases.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `tool_choice` "required" / a named tool: SmolLM2 135M (whose own template has no tools) is
/// made to write calls in every family's format by the forced-call grammar; each reply parses
/// into calls of known tools whose arguments follow their schemas (required keys, enums, types).
#[test]
fn forced_tool_calls_parse_in_every_family() {
    use inference::conversation::ChatPrompt;
    use inference::grammar::TokenTable;
    use inference::sampler::SamplerParams;
    use inference::tool_calls::{forced_call_grammar, ToolChoice};
    use std::sync::Arc;

    let (tools, _) = cases();
    let model = load_model("smollm2-135m-q4_1");
    let table = Arc::new(TokenTable::new(&model.tokenizer));
    let msgs = [ChatMessage::user(
        "What is 2 plus 40? And the weather in Paris?",
    )];
    let prompt = ChatPrompt::new(&model, &msgs).expect("prompt");
    let mut session = cpu_session(&model, 1024, 2, Activations::Q8);
    for family in [ToolFamily::Hermes, ToolFamily::Llama3, ToolFamily::Mistral] {
        for (choice, temperature) in [
            (ToolChoice::Function("add".into()), 0.0),
            (ToolChoice::Function("get_weather".into()), 0.7),
            (ToolChoice::Required, 0.0),
            (ToolChoice::Required, 0.9),
        ] {
            let g = forced_call_grammar(&tools, family, &choice)
                .expect("grammar")
                .expect("a call is forced");
            let params = GenerateParams {
                max_tokens: 160,
                sampler: SamplerParams {
                    temperature,
                    seed: 5,
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut sink = |_: Option<u32>, _: &str| true;
            let out = block_on(session.generate_constrained(
                &prompt.tokens,
                &params,
                Some(Arc::new(g).matcher(&table)),
                &mut sink,
            ))
            .expect("generation");
            let what = format!(
                "{} {choice:?} t={temperature}: {:?}",
                family.name(),
                out.text
            );
            let reply = parse_tool_calls(&out.text, family);
            assert!(!reply.tool_calls.is_empty(), "no call: {what}");
            assert!(reply.content.is_empty(), "text beside the calls: {what}");
            if let ToolChoice::Function(name) = &choice {
                assert_eq!(reply.tool_calls.len(), 1, "{what}");
                assert_eq!(&reply.tool_calls[0].name, name, "{what}");
            }
            for c in &reply.tool_calls {
                check_arguments(&tools, &c.name, &c.arguments)
                    .unwrap_or_else(|e| panic!("{e}: {what}"));
            }
            eprintln!("{what}");
        }
    }
}

#[test]
fn chord_generate_with_tools() {
    let dir = std::env::temp_dir().join(format!("chord-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (tools, _) = cases();
    let good = dir.join("tools.json");
    std::fs::write(&good, tools.to_string()).expect("write tools");
    // The CLI's plumbing on the small model (its template has no tools: no calls); the
    // calls themselves are the ignored test's.
    let model = model_path("smollm2-135m-q4_1");
    let run = |file: &std::path::Path, chat: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chord"));
        cmd.args(["generate", "--json", "--max-tokens", "8", "--prompt"])
            .arg("What is 2 plus 40? Use the add tool.")
            .arg("--tools")
            .arg(file)
            .arg("--model")
            .arg(&model);
        if chat {
            cmd.arg("--chat");
        }
        cmd.output().expect("run chord")
    };
    let out = run(&good, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("--json output");
    assert!(r["tool_calls"].as_array().is_some(), "{r}");
    assert_eq!(r["content"], r["text"], "{r}");
    // Bad tools files: one clear line each.
    let bad = dir.join("bad.json");
    for (text, msg) in [
        ("[{\"type\": \"function\", \"function\": {}}]", "name"),
        ("{\"tools\": []}", "array"),
        ("[1,", "not JSON"),
    ] {
        std::fs::write(&bad, text).expect("write");
        let out = run(&bad, true);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("--tools") && err.contains(msg), "{err}");
    }
    let out = run(&good, false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--chat"));
    // --tool-choice: a call cannot be forced where the template has no call format, nor a tool
    // that is not in the file; one line each.
    for (choice, msg) in [
        ("required", "no tool-call format"),
        ("nope", "no tool named `nope`"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chord"))
            .args([
                "generate",
                "--chat",
                "--max-tokens",
                "4",
                "--prompt",
                "hi",
                "--tools",
            ])
            .arg(&good)
            .args(["--tool-choice", choice, "--model"])
            .arg(&model)
            .output()
            .expect("run chord");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{choice}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(msg), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
