//! Structured output on a real model: SmolLM2 135M constrained by JSON schemas (greedy and
//! seeded sampling) always writes JSON that parses and validates against the schema; hostile
//! grammars are clear errors; and (ignored) the decode cost of the constraint.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use common::*;
use inference::chat::ChatMessage;
use inference::conversation::ChatPrompt;
use inference::engine::{block_on, GenerateParams, Generation, Session, StopReason};
use inference::grammar::{Grammar, TokenTable};
use inference::model::Model;
use inference::quant::Activations;
use inference::sampler::SamplerParams;
use serde_json::{json, Value};

/// (what to ask for, schema): `tests/data/structured/schemas.json`, which the npm package's
/// browser test (tests/e2e/npm.spec.mjs) runs as well, validated there with ajv.
fn schemas() -> Vec<(String, Value)> {
    let p = data_dir().join("structured").join("schemas.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let list: Vec<Value> = serde_json::from_str(&text).expect("schemas.json");
    list.into_iter()
        .map(|c| {
            (
                c["what"].as_str().expect("what").to_owned(),
                c["schema"].clone(),
            )
        })
        .collect()
}

/// Validation of the subset the compiler supports; `Err` says where `v` breaks `schema`.
fn validate(v: &Value, schema: &Value, root: &Value, path: &str) -> Result<(), String> {
    let s = schema
        .as_object()
        .ok_or(format!("{path}: schema not an object"))?;
    let fail = |what: &str| Err(format!("{path}: {what} (value {v})"));
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        let target = root
            .get("$defs")
            .and_then(|d| d.get(name))
            .ok_or("bad $ref")?;
        return validate(v, target, root, path);
    }
    if let Some(c) = s.get("const") {
        return if v == c {
            Ok(())
        } else {
            fail("not the const")
        };
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return if e.contains(v) {
            Ok(())
        } else {
            fail("not in enum")
        };
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            let ok = list
                .iter()
                .filter(|sub| validate(v, sub, root, path).is_ok())
                .count();
            let good = if key == "oneOf" { ok == 1 } else { ok >= 1 };
            return if good { Ok(()) } else { fail(key) };
        }
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec!["object"],
    };
    let t = types
        .iter()
        .find(|t| type_ok(v, t))
        .ok_or(format!("{path}: {v} is not {types:?}"))?;
    let count = |k: &str| s.get(k).and_then(Value::as_u64).map(|n| n as usize);
    match *t {
        "string" => {
            let n = v.as_str().map_or(0, |x| x.chars().count());
            if count("minLength").is_some_and(|m| n < m)
                || count("maxLength").is_some_and(|m| n > m)
            {
                return fail("string length out of bounds");
            }
        }
        "array" => {
            let a = v.as_array().ok_or("array")?;
            if count("minItems").is_some_and(|m| a.len() < m)
                || count("maxItems").is_some_and(|m| a.len() > m)
            {
                return fail("item count out of bounds");
            }
            if let Some(items) = s.get("items") {
                for (i, x) in a.iter().enumerate() {
                    validate(x, items, root, &format!("{path}[{i}]"))?;
                }
            }
        }
        "object" => {
            let o = v.as_object().ok_or("object")?;
            let props = s.get("properties").and_then(Value::as_object);
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !o.contains_key(r.as_str().unwrap_or_default()) {
                    return fail(&format!("missing {r}"));
                }
            }
            for (k, x) in o {
                let sub = props
                    .and_then(|p| p.get(k))
                    .ok_or(format!("{path}: extra property {k}"))?;
                validate(x, sub, root, &format!("{path}.{k}"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn type_ok(v: &Value, t: &str) -> bool {
    match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|x| x.fract() == 0.0), // -0 and 1.0 count
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

fn prompt(model: &Model, what: &str, schema: &Value) -> ChatPrompt {
    let msgs = [
        ChatMessage::system("You answer with JSON only."),
        ChatMessage::user(format!(
            "Give me {what} as JSON matching this schema: {schema}"
        )),
    ];
    ChatPrompt::new(model, &msgs).expect("prompt")
}

fn constrained(
    s: &mut Session,
    table: &Arc<TokenTable>,
    p: &ChatPrompt,
    schema: &Value,
    params: &GenerateParams,
) -> Generation {
    let g = Arc::new(Grammar::json_schema(schema).expect("schema compiles"));
    let mut sink = |_: Option<u32>, _: &str| true;
    block_on(s.generate_constrained(&p.tokens, params, Some(g.matcher(table)), &mut sink))
        .expect("generation")
}

fn params(sampled: bool, seed: u64) -> GenerateParams {
    let sampler = if sampled {
        SamplerParams {
            temperature: 0.8,
            seed,
            ..Default::default()
        }
    } else {
        SamplerParams::default()
    };
    GenerateParams {
        max_tokens: 200,
        sampler,
        ..Default::default()
    }
}

#[test]
fn twenty_schemas_greedy_and_sampled_give_valid_json() {
    let model: Rc<Model> = load_model("smollm2-135m-q4_1");
    let table = Arc::new(TokenTable::new(&model.tokenizer));
    let mut session = cpu_session(&model, 2048, 2, Activations::Q8);
    let mut failures = Vec::new();
    let t0 = Instant::now();
    let mut tokens = 0;
    for (i, (what, schema)) in schemas().iter().enumerate() {
        let p = prompt(&model, what, schema);
        for sampled in [false, true] {
            let g = constrained(
                &mut session,
                &table,
                &p,
                schema,
                &params(sampled, i as u64 + 1),
            );
            tokens += g.tokens.len();
            let mode = if sampled { "sampled" } else { "greedy" };
            eprintln!(
                "{i:2} {mode:7} {:?} {:3} tokens: {}",
                g.stop,
                g.tokens.len(),
                g.text
            );
            let verdict = match g.stop {
                StopReason::Grammar | StopReason::Eos => serde_json::from_str::<Value>(&g.text)
                    .map_err(|e| format!("does not parse: {e}"))
                    .and_then(|v| validate(&v, schema, schema, "$")),
                other => Err(format!("stopped by {other:?} before the grammar completed")),
            };
            if let Err(e) = verdict {
                failures.push(format!("schema {i} ({what}), {mode}: {e}: {}", g.text));
            }
        }
    }
    eprintln!(
        "40 generations, {tokens} tokens, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "invalid outputs:\n{}",
        failures.join("\n")
    );
}

#[test]
fn json_object_mode_gives_an_object() {
    let model = load_model("smollm2-135m-q4_1");
    let table = Arc::new(TokenTable::new(&model.tokenizer));
    let mut session = cpu_session(&model, 1024, 2, Activations::Q8);
    // A free-form object: the model decides when to close it, so ask for a small one.
    let msgs = [
        ChatMessage::system("You answer with JSON only."),
        ChatMessage::user(
            "Give me a JSON object with two keys: \"name\" (Alice) and \"age\" (30).",
        ),
    ];
    let p = ChatPrompt::new(&model, &msgs).expect("prompt");
    let g = Arc::new(Grammar::json_object());
    let mut sink = |_: Option<u32>, _: &str| true;
    let out = block_on(session.generate_constrained(
        &p.tokens,
        &params(false, 0),
        Some(g.matcher(&table)),
        &mut sink,
    ))
    .expect("generation");
    eprintln!("{:?}: {}", out.stop, out.text);
    assert_ne!(
        out.stop,
        StopReason::Length,
        "the object did not close in 200 tokens"
    );
    let v: Value = serde_json::from_str(&out.text).expect("JSON");
    assert!(v.is_object());
}

#[test]
fn hostile_grammars_are_clear_errors() {
    let err = |src: &str| Grammar::gbnf(src).expect_err("refused").to_string();
    let e = err("root ::= \"a\" missing");
    assert!(
        e.contains("undefined rule `missing`") && e.contains("line 1, column 14"),
        "{e}"
    );
    assert!(err("root ::= root \"x\" | \"y\"").contains("left recursion"));
    assert!(err("root ::= (\"\" | \"a\"?)*").contains("left recursion"));
    assert!(err("root ::= \"a\" root").contains("never finish"));
    assert!(err("root ::= \"a\"{99999999999}").contains("larger than"));
    assert!(err("root ::= ((((\"ab\"{999}){999}){999}){999})").contains("elements"));
    let s = Grammar::json_schema(&json!({"type": "string", "pattern": "[a-z]+"}));
    assert!(s.expect_err("refused").to_string().contains("`pattern`"));
    let deep = (0..200).fold(
        json!({"type": "integer"}),
        |acc, _| json!({"type": "array", "items": acc}),
    );
    assert!(Grammar::json_schema(&deep).is_err(), "nesting is bounded");
}

/// Decode speed with and without a JSON-schema constraint, side by side (1 thread):
/// `cargo test --release -p inference --test structured -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_constrained_decode() {
    let model = load_model("smollm2-135m-q4_1");
    let t = Instant::now();
    let table = Arc::new(TokenTable::new(&model.tokenizer));
    eprintln!(
        "token table: {:.1} ms for {} tokens",
        t.elapsed().as_secs_f64() * 1e3,
        model.tokenizer.vocab_size()
    );
    let schema = json!({"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}}, "required": ["name", "age"]}, "minItems": 8, "maxItems": 8});
    let p = prompt(&model, "eight people", &schema);
    let grammar = Arc::new(Grammar::json_schema(&schema).expect("schema"));
    for sampled in [false, true] {
        let gp = params(sampled, 7);
        let mut a = cpu_session(&model, 2048, 1, Activations::Q8);
        let mut sink = |_: Option<u32>, _: &str| true;
        let free = block_on(a.generate(
            &p.tokens,
            &GenerateParams {
                max_tokens: 150,
                ignore_eos: true,
                ..gp.clone()
            },
            &mut sink,
        ))
        .expect("free");
        let mut b = cpu_session(&model, 2048, 1, Activations::Q8);
        let con = block_on(b.generate_constrained(
            &p.tokens,
            &GenerateParams {
                max_tokens: 300,
                ..gp
            },
            Some(grammar.matcher(&table)),
            &mut sink,
        ))
        .expect("constrained");
        // The matcher's own cost on these tokens: the check of the chosen token (what most
        // steps cost), and a full vocabulary mask with fresh caches and with warm ones.
        let per = |total: f64| total * 1e3 / con.tokens.len().max(1) as f64;
        let mut m = grammar.matcher(&table);
        let t = Instant::now();
        for &id in &con.tokens {
            assert!(m.allows(id));
            m.accept_token(id).expect("replay");
        }
        let check = per(t.elapsed().as_secs_f64());
        let mut m = grammar.matcher(&table);
        let mut cold = 0.0;
        for &id in &con.tokens {
            let t = Instant::now();
            std::hint::black_box(m.allowed());
            cold += t.elapsed().as_secs_f64();
            m.accept_token(id).expect("replay");
        }
        m.reset();
        let mut warm = 0.0;
        for &id in &con.tokens {
            let t = Instant::now();
            std::hint::black_box(m.allowed());
            warm += t.elapsed().as_secs_f64();
            m.accept_token(id).expect("replay");
        }
        let mode = if sampled { "sampled t=0.8" } else { "greedy" };
        eprintln!(
            "{mode}: unconstrained {:.1} tok/s ({} tokens) | json-schema {:.1} tok/s ({} tokens, {:?}) | per token: check {:.4} ms, full mask {:.3} ms cold / {:.4} ms warm",
            free.decode_tok_s(), free.tokens.len(), con.decode_tok_s(), con.tokens.len(), con.stop,
            check,
            per(cold),
            per(warm)
        );
        eprintln!("  {}", con.text);
    }
}

/// `chord generate --json-schema FILE` prints JSON that has the schema's shape; a broken
/// grammar file is one clear error line.
#[test]
fn chord_generate_with_a_json_schema() {
    let dir = std::env::temp_dir().join(format!("chord-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let schema = dir.join("person.json");
    std::fs::write(
        &schema,
        r#"{"type":"object","properties":{"name":{"type":"string","maxLength":20},
            "age":{"type":"integer"}},"required":["name","age"]}"#,
    )
    .expect("write schema");
    let model = model_path("smollm2-135m-q4_1");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chord"))
            .args([
                "generate",
                "--chat",
                "--prompt",
                "Give me a person as JSON.",
                "--json",
            ])
            .args(["--max-tokens", "80", "--model"])
            .arg(&model)
            .args(extra)
            .output()
            .expect("run chord")
    };
    let out = run(&["--json-schema", schema.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json output");
    let text = r["text"].as_str().expect("text");
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    assert!(v["name"].is_string() && v["age"].is_i64(), "{v}");
    let bad = dir.join("bad.gbnf");
    std::fs::write(&bad, "root ::= missing").expect("write grammar");
    let out = run(&["--grammar", bad.to_str().expect("path")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("missing"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
