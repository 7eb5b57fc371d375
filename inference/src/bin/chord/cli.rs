//! `chord` — the native command line of wasm-chord (contract: ../shared/DESIGN.md); native only.
//! This file: argument parsing, loading, the commands' dispatch and `generate`; `chat.rs`,
//! `bench.rs` and `inspect.rs` hold the other commands. Errors are one line on stderr and a
//! non-zero exit status.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use inference::backend::{BackendPref, GpuOptions};
use inference::engine::{block_on, GenerateParams, Session, SessionOptions};
use inference::loader::{file_size, LoadOptions, LoadedModel, Loader};
use inference::model::Model;
use inference::quant::Activations;
use inference::sampler::SamplerParams;
use serde_json::json;

use inference::chat::ChatMessage;
use inference::grammar::{Grammar, TokenTable};
use inference::tool_calls::{forced_call_grammar, parse_tool_calls, ToolChoice};

pub const USAGE: &str = "usage:
  chord generate --model PATH --prompt TEXT [--chat] [--system TEXT] [--max-tokens N] [--temperature T]
                 [--top-p P] [--top-k K] [--min-p P] [--repeat-penalty R] [--seed S] [--ctx-size N]
                 [--ignore-eos] [--backend cpu|webgpu|auto] [--threads N] [--activations f32|q8] [--json]
                 [--json-schema FILE | --grammar FILE] [--tools FILE [--tool-choice auto|none|required|NAME]]
  chord chat     --model PATH [--system TEXT] [--json] [--no-reuse] [--max-tokens N] [--temperature T]
                 [--top-p P] [--top-k K] [--min-p P] [--repeat-penalty R] [--seed S] [--ctx-size N]
                 [--backend cpu|webgpu|auto] [--threads N] [--activations f32|q8] [--tools FILE]
  chord tokenize --model PATH --text TEXT [--json]
  chord logits   --model PATH (--prompt TEXT | --tokens 1,2,3) [--top K] [--all-positions]
                 [--backend cpu|webgpu|auto] [--threads N] [--activations f32|q8] [--json]
  chord inspect  --model PATH [--json]
  chord bench    --model PATH [--threads N] [--prompt-tokens 64] [--gen-tokens 64] [--runs 5]
                 [--kernels simd|scalar|avx2|avxvnni|avx512vnni] [--activations f32|q8]
                 [--backend cpu|webgpu|auto] [--profile] [--json]
  chord quantize IN.gguf OUT.gguf --type TYPE [--tensor-type PATTERN=TYPE]... [--layers N] [--json]
  chord split    IN.gguf --parts N [--out PREFIX]

  chat: one user message per line on stdin; /reset starts over, /regen replaces the last reply,
  /edit N TEXT replaces user message N (1 = the first) and what follows it. Each turn evaluates
  only the tokens the KV cache does not hold yet (--no-reuse: the whole conversation, every turn);
  a full context is shifted (the system prompt stays), never refused.
  --json-schema / --grammar: structured output; every token is one the JSON Schema (the common
  subset: objects, arrays, enums, strings, numbers, anyOf, $ref) or the GBNF grammar allows, and
  generation stops where the output is complete.
  --tools FILE: a JSON array of OpenAI tools ({type: function, function: {name, description,
  parameters}}) rendered by the chat template (generate: with --chat); the reply is parsed into
  OpenAI tool_calls (--json: `content` and `tool_calls`). In chat, /tool TEXT answers the last
  reply's pending tool call with a `tool` message. --tool-choice required (a call of any tool) or
  NAME (one call of that tool) enforces a call with a grammar in the template's call format.
  --activations: q8 (the default of generate, chat and bench) quantizes matmul inputs to 8 bits
  like llama.cpp (about twice as fast; logits move by up to ~1); f32 (the default of logits) keeps
  them exact.
  quantize: `chord quantize --help` lists the types; matrices are requantized, the rest copied.
  split: writes PREFIX-00001-of-0000N.gguf … like llama.cpp's gguf-split; every command that
  takes --model loads a split model by its first part.";

pub type CliResult<T> = Result<T, String>;

/// Parsed `--flag value` / `--switch` arguments.
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

const SWITCHES: &[&str] = &[
    "--chat",
    "--json",
    "--all-positions",
    "--ignore-eos",
    "--profile",
    "--no-reuse",
    "--help",
];

/// The sampling and length flags of `generate` and `chat`.
pub const SAMPLING_FLAGS: &[&str] = &[
    "--max-tokens",
    "--temperature",
    "--top-p",
    "--top-k",
    "--min-p",
    "--repeat-penalty",
    "--seed",
];

impl Args {
    pub fn parse(raw: &[String], allowed: &[&str]) -> CliResult<Args> {
        let mut values = HashMap::new();
        let mut switches = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if !a.starts_with("--") {
                return Err(format!("unexpected argument `{a}`"));
            }
            if !allowed.contains(&a.as_str()) && a != "--help" {
                return Err(format!("unknown option `{a}` for this command"));
            }
            if SWITCHES.contains(&a.as_str()) {
                switches.push(a.clone());
            } else {
                let v = it.next().ok_or_else(|| format!("`{a}` needs a value"))?;
                values.insert(a.clone(), v.clone());
            }
        }
        Ok(Args { values, switches })
    }

    pub fn flag(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn need(&self, name: &str) -> CliResult<&str> {
        self.get(name).ok_or_else(|| format!("missing `{name}`"))
    }

    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> CliResult<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("`{name}` expects a number, got `{v}`")),
        }
    }
}

/// Exit status of a bug (a panic): 1 is a user error, 2 an internal one.
const EXIT_INTERNAL: i32 = 2;

pub fn main() {
    // Never a backtrace (unless RUST_BACKTRACE asks for one): a bug still ends with one line and
    // a non-zero status, on whichever thread it happens (a pool worker included).
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = msg.replace('\n', " ");
        eprintln!("error: internal error: {msg}{at}");
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
        std::process::exit(EXIT_INTERNAL);
    }));
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&argv) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn run(argv: &[String]) -> CliResult<()> {
    let Some((cmd, rest)) = argv.split_first() else {
        return Err(format!("no command\n{USAGE}"));
    };
    match cmd.as_str() {
        "generate" => generate(rest),
        "chat" => crate::chat::chat(rest),
        "tokenize" => crate::inspect::tokenize(rest),
        "logits" => crate::inspect::logits(rest),
        "inspect" => crate::inspect::inspect(rest),
        "bench" => crate::bench::bench(rest),
        "quantize" => crate::quantize::quantize(rest),
        "split" => crate::quantize::split(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

/// `--model`, loaded onto the host only (tokenize, inspect).
pub fn load_host(args: &Args) -> CliResult<Model> {
    let path = PathBuf::from(args.need("--model")?);
    let model = Model::load_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    warn_tokenizer(&model);
    Ok(model)
}

/// The tokenizer's warning (e.g. an unknown pre-tokenizer), one line on stderr.
fn warn_tokenizer(model: &Model) {
    if let Some(w) = model.tokenizer.warning() {
        eprintln!("warning: {w}");
    }
}

/// `--backend cpu|webgpu|auto` (default cpu).
pub fn backend_pref(args: &Args) -> CliResult<BackendPref> {
    let name = args.get("--backend").unwrap_or("cpu");
    BackendPref::parse(name)
        .ok_or_else(|| format!("unknown backend `{name}` (cpu, webgpu or auto)"))
}

/// Load `--model` for `--backend` (the loader every front end uses): on webgpu the weight
/// matrices go to the GPU tensor by tensor as the file is read, so the host never holds them.
/// `--backend webgpu` without a usable GPU is an error here (the app falls back instead).
/// `timestamps` asks the GPU for timestamp queries (`chord bench`: GPU time per token).
pub fn load(args: &Args, timestamps: bool) -> CliResult<(LoadedModel, f64)> {
    let path = PathBuf::from(args.need("--model")?);
    let pref = backend_pref(args)?;
    let t = Instant::now();
    let opts = LoadOptions {
        backend: pref,
        gpu: GpuOptions {
            timestamps,
            // an f16 cache where the GPU has shader-f16 (as llama.cpp's default cache type)
            f16_kv: true,
            ..Default::default()
        },
    };
    let at = |e: inference::Error| format!("{}: {e}", path.display());
    // The first part of a split model (`…-00001-of-0000N.gguf`) brings its other parts.
    let files = inference::loader::model_files(&path).map_err(|e| e.to_string())?;
    let sizes = files
        .iter()
        .map(|f| file_size(f))
        .collect::<Result<Vec<u64>, _>>()
        .map_err(at)?;
    let loader = block_on(Loader::new_split(&sizes, &opts));
    if pref == BackendPref::WebGpu && !loader.choice().is_gpu() {
        let why = loader.choice().fallback.clone().unwrap_or_default();
        return Err(format!("--backend webgpu: {why}"));
    }
    let loaded = loader.read_files(&files).map_err(at)?;
    warn_tokenizer(&loaded.model);
    Ok((loaded, t.elapsed().as_secs_f64()))
}

pub fn threads(args: &Args) -> CliResult<usize> {
    let default = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n: usize = args.num("--threads", default)?;
    if n == 0 {
        return Err("`--threads` must be at least 1".into());
    }
    Ok(n)
}

/// `--activations f32|q8` (default `default`).
pub fn activations(args: &Args, default: Activations) -> CliResult<Activations> {
    match args.get("--activations") {
        None => Ok(default),
        Some("f32") => Ok(Activations::F32),
        Some("q8") => Ok(Activations::Q8),
        Some(other) => Err(format!("unknown activations `{other}` (f32 or q8)")),
    }
}

/// The sampling flags (greedy unless `--temperature` > 0) and `--max-tokens`.
pub fn generate_params(args: &Args, max_tokens: usize) -> CliResult<GenerateParams> {
    let d = SamplerParams::default();
    Ok(GenerateParams {
        max_tokens: args.num("--max-tokens", max_tokens)?,
        sampler: SamplerParams {
            temperature: args.num("--temperature", 0.0)?,
            top_k: args.num("--top-k", d.top_k)?,
            top_p: args.num("--top-p", d.top_p)?,
            min_p: args.num("--min-p", d.min_p)?,
            repeat_penalty: args.num("--repeat-penalty", d.repeat_penalty)?,
            seed: args.num("--seed", d.seed)?,
            ..d
        },
        ignore_eos: args.flag("--ignore-eos"),
        keep: None,
    })
}

/// "CPU (N threads)" or the GPU adapter.
pub fn adapter(loaded: &LoadedModel, threads: usize) -> String {
    match &loaded.choice.adapter {
        Some(a) => a.clone(),
        None => format!(
            "CPU ({threads} thread{})",
            if threads == 1 { "" } else { "s" }
        ),
    }
}

/// The grammar of `--json-schema FILE` or `--grammar FILE` (GBNF), if either is given.
fn grammar(a: &Args) -> CliResult<Option<Grammar>> {
    let read = |flag: &str, path: &str| {
        std::fs::read_to_string(path).map_err(|e| format!("{flag} {path}: {e}"))
    };
    match (a.get("--json-schema"), a.get("--grammar")) {
        (Some(_), Some(_)) => Err("give --json-schema or --grammar, not both".into()),
        (Some(p), None) => {
            let v: serde_json::Value = serde_json::from_str(&read("--json-schema", p)?)
                .map_err(|e| format!("--json-schema {p}: not JSON: {e}"))?;
            Grammar::json_schema(&v)
                .map(Some)
                .map_err(|e| format!("--json-schema {p}: {e}"))
        }
        (None, Some(p)) => Grammar::gbnf(&read("--grammar", p)?)
            .map(Some)
            .map_err(|e| format!("--grammar {p}: {e}")),
        (None, None) => Ok(None),
    }
}

/// `--tools FILE`: an OpenAI `tools` array, checked (and written as templates get it).
pub fn tools(a: &Args) -> CliResult<Option<serde_json::Value>> {
    let Some(p) = a.get("--tools") else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(p).map_err(|e| format!("--tools {p}: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("--tools {p}: not JSON: {e}"))?;
    inference::tool_calls::normalize_tools(&v)
        .map(Some)
        .map_err(|e| format!("--tools {p}: {e}"))
}

/// `--tool-choice auto|none|required|NAME` (needs `--tools`).
fn tool_choice(a: &Args, has_tools: bool) -> CliResult<ToolChoice> {
    let Some(v) = a.get("--tool-choice") else {
        return Ok(ToolChoice::Auto);
    };
    if !has_tools {
        return Err("--tool-choice needs --tools FILE".into());
    }
    Ok(match v {
        "auto" => ToolChoice::Auto,
        "none" => ToolChoice::None,
        "required" => ToolChoice::Required,
        name => ToolChoice::Function(name.to_owned()),
    })
}

fn generate(raw: &[String]) -> CliResult<()> {
    let mut allowed = vec![
        "--model",
        "--prompt",
        "--chat",
        "--system",
        "--ctx-size",
        "--ignore-eos",
        "--backend",
        "--threads",
        "--activations",
        "--json",
        "--json-schema",
        "--grammar",
        "--tools",
        "--tool-choice",
    ];
    allowed.extend_from_slice(SAMPLING_FLAGS);
    let a = Args::parse(raw, &allowed)?;
    let mut tools = tools(&a)?;
    if tools.is_some() && !a.flag("--chat") {
        return Err("--tools needs --chat (the chat template renders the tools)".into());
    }
    let choice = tool_choice(&a, tools.is_some())?;
    if choice == ToolChoice::None {
        tools = None;
    }
    backend_pref(&a)?;
    let threads = threads(&a)?;
    let act = activations(&a, Activations::Q8)?;
    let prompt_text = a.need("--prompt")?.to_owned();
    let mut grammar = grammar(&a)?;
    if choice.forces_a_call() && grammar.is_some() {
        return Err(
            "--tool-choice required/NAME cannot be combined with --json-schema or --grammar".into(),
        );
    }
    let params = generate_params(&a, 128)?;
    let (loaded, load_s) = load(&a, false)?;
    let model = &loaded.model;
    if let Some(t) = &tools {
        if let Some(g) = forced_call_grammar(t, model.chat.tool_family(), &choice)
            .map_err(|e| format!("--tool-choice: {e}"))?
        {
            grammar = Some(g);
        }
    }
    let text = if let Some(t) = &tools {
        let mut msgs = Vec::new();
        if let Some(s) = a.get("--system") {
            msgs.push(ChatMessage::system(s));
        }
        msgs.push(ChatMessage::user(prompt_text));
        model
            .chat
            .render_with_tools(&msgs, Some(t), true)
            .map_err(|e| e.to_string())?
    } else if a.flag("--chat") {
        model
            .chat_prompt(a.get("--system"), &prompt_text)
            .map_err(|e| e.to_string())?
    } else {
        prompt_text
    };
    let prompt = model.tokenizer.encode(&text, true);
    // The KV cache holds what this run needs, not the model's whole training context.
    let n_ctx = a.num("--ctx-size", prompt.len() + params.max_tokens)?;
    let json_out = a.flag("--json");
    let mut session = Session::new(
        &loaded,
        &SessionOptions {
            n_ctx,
            threads,
            activations: act,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout();
    let mut print = |_: Option<u32>, piece: &str| {
        if !json_out {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }
        true
    };
    let matcher = grammar.map(|g| {
        let table = Arc::new(TokenTable::new(&model.tokenizer));
        Arc::new(g).matcher(&table)
    });
    let g = block_on(session.generate_constrained(&prompt, &params, matcher, &mut print))
        .map_err(|e| e.to_string())?;
    if json_out {
        let mut out = json!({
            "model": model.name,
            "backend": session.kind().name(),
            "adapter": adapter(&loaded, threads),
            "activations": act.name(),
            "kernels": inference::quant::kernels(),
            "prompt_tokens": prompt,
            "tokens": g.tokens,
            "text": g.text,
            "stop": g.stop.name(),
            "load_s": load_s,
            "prefill_tok_s": g.prefill_tok_s(),
            "decode_tok_s": g.decode_tok_s(),
            "kv_cache_bytes": session.backend().kv_bytes(),
        });
        if let (Some(_), Some(o)) = (&tools, out.as_object_mut()) {
            let reply = parse_tool_calls(&g.text, model.chat.tool_family());
            o.insert("content".into(), json!(reply.content));
            o.insert("tool_calls".into(), json!(reply.tool_calls));
        }
        #[cfg(feature = "webgpu")]
        if let (Some(gpu), Some(o)) = (session.backend().gpu(), out.as_object_mut()) {
            let st = gpu.stats();
            o.insert(
                "gpu".into(),
                json!({
                    "dispatches_per_token": st.dispatches_per_token,
                    "submits_per_token": st.submits_per_token,
                    "readback_bytes_per_token": st.readback_bytes_per_token,
                    "buffer_bytes": st.buffer_bytes,
                    "tensor_bytes": st.tensor_bytes,
                    "kv_cache_bytes": st.kv_cache_bytes,
                    "scratch_bytes": st.scratch_bytes,
                }),
            );
        }
        println!("{out}");
    } else {
        println!();
        if tools.is_some() {
            let reply = parse_tool_calls(&g.text, model.chat.tool_family());
            if !reply.tool_calls.is_empty() {
                eprintln!("[tool_calls: {}]", json!(reply.tool_calls));
            }
        }
        eprintln!(
            "[{} prompt tokens, {:.1} tok/s prefill; {} tokens, {:.1} tok/s decode; load {:.2} s; stop: {}]",
            g.prompt_tokens,
            g.prefill_tok_s(),
            g.tokens.len(),
            g.decode_tok_s(),
            load_s,
            g.stop.name()
        );
    }
    Ok(())
}
