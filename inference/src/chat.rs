//! Chat templates: the GGUF's `tokenizer.chat_template` (a Hugging Face Jinja template) rendered
//! with minijinja, or a built-in template when the file has none.
//!
//! The environment follows Hugging Face's `apply_chat_template`: `trim_blocks` and
//! `lstrip_blocks` on, `raise_exception(msg)`, Python string/dict methods (`.strip()`,
//! `.startswith()`, `.items()`, ...) through minijinja-contrib's pycompat, `tojson`, and the
//! variables `messages` (list of `{role, content}`), `add_generation_prompt`, `bos_token`,
//! `eos_token`.
//!
//! Built-ins (used only when the GGUF has no template), chosen by `general.architecture` and the
//! vocabulary:
//! - Gemma (`gemma`, `gemma2`, `gemma3`): `<start_of_turn>user\n…<end_of_turn>\n`, `assistant`
//!   becomes `model`, the system prompt is merged into the first user turn (llama.cpp's format).
//! - Llama 3 (vocabulary has `<|start_header_id|>`): `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`.
//! - Llama 2 (`llama` with a SentencePiece vocabulary): `[INST] <<SYS>>…<</SYS>> … [/INST]`.
//! - ChatML (`<|im_start|>role\n…<|im_end|>\n`) for everything else (Qwen2, SmolLM, …).
//!
//! Like llama.cpp's built-ins, no template here writes BOS itself unless the model's own template
//! does; the tokenizer adds it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use minijinja::machinery::{get_compiled_template, make_string_output, Instructions, Vm};
use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gguf::{Array, Metadata, Value as GgufValue};
use crate::tool_calls::{normalize_tools, ToolCall, ToolFamily};

/// One message of a conversation. The tool fields follow OpenAI's chat messages: an assistant
/// message may carry `tool_calls` (its content then often empty; `null` reads as ""), a `tool`
/// message answers one with `tool_call_id` (and the tool's `name`). They are left out of the
/// JSON when absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
    /// An assistant turn that calls tools (`content` may be "").
    pub fn assistant_tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        ChatMessage {
            tool_calls: Some(calls),
            ..Self::new("assistant", content)
        }
    }
    /// A tool's result (role `tool`), answering the call `tool_call_id`.
    pub fn tool_result(
        tool_call_id: impl Into<String>,
        name: Option<String>,
        content: impl Into<String>,
    ) -> Self {
        ChatMessage {
            tool_call_id: Some(tool_call_id.into()),
            name,
            ..Self::new("tool", content)
        }
    }
    /// The message as a template sees it: tool calls in llama.cpp's shape (arguments as an
    /// object when they parse as one), absent fields left out.
    fn template_value(&self) -> serde_json::Value {
        use serde_json::Value as J;
        let mut m = serde_json::Map::new();
        m.insert("role".into(), J::String(self.role.clone()));
        m.insert("content".into(), J::String(self.content.clone()));
        if let Some(n) = &self.name {
            m.insert("name".into(), J::String(n.clone()));
        }
        if let Some(id) = &self.tool_call_id {
            m.insert("tool_call_id".into(), J::String(id.clone()));
        }
        if let Some(calls) = self.tool_calls.as_ref().filter(|c| !c.is_empty()) {
            let calls = calls.iter().map(ToolCall::template_value).collect();
            m.insert("tool_calls".into(), J::Array(calls));
        }
        J::Object(m)
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Which template a [`ChatTemplate`] renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateSource {
    /// `tokenizer.chat_template` from the GGUF.
    Gguf,
    BuiltinGemma,
    BuiltinLlama3,
    BuiltinLlama2,
    BuiltinChatMl,
}

pub const GEMMA_TEMPLATE: &str = "\
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
{%- if message.role == 'system' -%}
{%- set ns.system = ns.system + (message.content | trim) -%}
{%- else -%}
{%- set role = 'model' if message.role == 'assistant' else message.role -%}
{{- '<start_of_turn>' + role + '\\n' -}}
{%- if ns.system and role != 'model' -%}
{{- ns.system + '\\n\\n' -}}
{%- set ns.system = '' -%}
{%- endif -%}
{{- (message.content | trim) + '<end_of_turn>\\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<start_of_turn>model\\n' -}}
{%- endif -%}";

pub const CHATML_TEMPLATE: &str = "\
{%- for message in messages -%}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\\n' -}}
{%- endif -%}";

pub const LLAMA3_TEMPLATE: &str = "\
{%- for message in messages -%}
{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + (message.content | trim) + '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
{%- endif -%}";

pub const LLAMA2_TEMPLATE: &str = "\
{%- set ns = namespace(system='', first=true) -%}
{%- for message in messages -%}
{%- if message.role == 'system' -%}
{%- set ns.system = message.content | trim -%}
{%- elif message.role == 'user' -%}
{{- ('' if ns.first else bos_token) + '[INST] ' -}}
{%- if ns.system -%}
{{- '<<SYS>>\\n' + ns.system + '\\n<</SYS>>\\n\\n' -}}
{%- set ns.system = '' -%}
{%- endif -%}
{{- (message.content | trim) + ' [/INST]' -}}
{%- set ns.first = false -%}
{%- else -%}
{{- ' ' + (message.content | trim) + ' ' + eos_token -}}
{%- endif -%}
{%- endfor -%}";

/// A compiled chat template plus the special-token strings it may use.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: TemplateSource,
    bos_token: String,
    eos_token: String,
    limits: Limits,
    tool_family: ToolFamily,
}

fn template_error(e: minijinja::Error) -> Error {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    Error::Template(msg.replace('\n', " "))
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

/// The text of the token named by `key`, or "" when absent.
fn token_string(md: &Metadata, key: &str) -> String {
    let (Some(id), Some(GgufValue::Array(Array::String(tokens)))) =
        (md.get_u64(key), md.get("tokenizer.ggml.tokens"))
    else {
        return String::new();
    };
    usize::try_from(id)
        .ok()
        .and_then(|i| tokens.get(i))
        .cloned()
        .unwrap_or_default()
}

fn vocab_has(md: &Metadata, text: &str) -> bool {
    matches!(md.get("tokenizer.ggml.tokens"), Some(GgufValue::Array(Array::String(t))) if t.iter().any(|s| s == text))
}

impl ChatTemplate {
    /// The GGUF's template, or a built-in one chosen by architecture when it has none.
    pub fn from_metadata(md: &Metadata) -> Result<ChatTemplate> {
        let bos = token_string(md, "tokenizer.ggml.bos_token_id");
        let eos = token_string(md, "tokenizer.ggml.eos_token_id");
        // The output may hold a whole context of text: 4 bytes a token (clamped, so that a
        // hostile `context_length` buys no more than MAX_OUTPUT_CAP).
        let n_ctx = md
            .get_str("general.architecture")
            .and_then(|a| md.get_u64(&format!("{a}.context_length")))
            .unwrap_or(0);
        let limits = Limits::for_context(n_ctx);
        let t = match md.get("tokenizer.chat_template") {
            Some(GgufValue::String(src)) if !src.trim().is_empty() => {
                Self::new(src.clone(), TemplateSource::Gguf, bos, eos)
            }
            Some(GgufValue::String(_)) | None => {
                let arch = md.get_str("general.architecture").unwrap_or("");
                let spm = md.get_str("tokenizer.ggml.model") == Some("llama");
                let (src, which) = if arch.starts_with("gemma") {
                    (GEMMA_TEMPLATE, TemplateSource::BuiltinGemma)
                } else if vocab_has(md, "<|start_header_id|>") {
                    (LLAMA3_TEMPLATE, TemplateSource::BuiltinLlama3)
                } else if arch == "llama" && spm {
                    (LLAMA2_TEMPLATE, TemplateSource::BuiltinLlama2)
                } else {
                    (CHATML_TEMPLATE, TemplateSource::BuiltinChatMl)
                };
                Self::new(src.to_owned(), which, bos, eos)
            }
            Some(v) => Err(Error::Template(format!(
                "`tokenizer.chat_template` must be a string, found {}",
                v.summary()
            ))),
        }?;
        Ok(t.with_limits(limits))
    }

    /// Compile a template from Jinja source (the default [`Limits`]: 1 MiB of output).
    pub fn new(
        source: String,
        which: TemplateSource,
        bos_token: String,
        eos_token: String,
    ) -> Result<ChatTemplate> {
        if source.len() > MAX_SOURCE {
            return Err(Error::Template(format!(
                "the template is {} bytes (at most {MAX_SOURCE})",
                source.len()
            )));
        }
        guard::check_constants(&source).map_err(Error::Template)?;
        let tool_family = ToolFamily::detect(&source);
        let limits = Limits::default();
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source)
            .map_err(template_error)?;
        {
            let tmpl = env.get_template("chat").map_err(template_error)?;
            let compiled = get_compiled_template(&tmpl);
            std::iter::once(&compiled.instructions)
                .chain(compiled.blocks.values())
                .try_for_each(guard::check_single)
                .map_err(Error::Template)?;
        }
        let mut t = ChatTemplate {
            env,
            source: which,
            bos_token,
            eos_token,
            limits,
            tool_family,
        };
        t.install_guards();
        Ok(t)
    }

    /// The same template under other limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.install_guards();
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Fuel, recursion limit and the size-checked operators, filters and methods of
    /// [`guard`]; the fuel is lowered for templates with long literal text, so that literal
    /// output (which no hook sees while rendering) stays within [`RAW_BUDGET`].
    fn install_guards(&mut self) {
        let max_raw = self
            .env
            .get_template("chat")
            .map(|t| guard::max_raw_len(&get_compiled_template(&t).instructions))
            .unwrap_or(1);
        let fuel =
            (RAW_BUDGET / max_raw.max(1) as u64).clamp(MIN_FUEL, self.limits.fuel.max(MIN_FUEL));
        self.env.set_fuel(Some(fuel));
        self.env.set_recursion_limit(RECURSION_LIMIT);
        guard::install(&mut self.env, self.limits.clone());
    }

    /// Compile a user-supplied template (e.g. an override from the UI).
    pub fn from_source(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        Self::new(
            source.to_owned(),
            TemplateSource::Gguf,
            bos_token.to_owned(),
            eos_token.to_owned(),
        )
    }

    pub fn source(&self) -> TemplateSource {
        self.source
    }

    /// How this template's model writes tool calls (for [`crate::tool_calls::parse_tool_calls`]),
    /// told from its source ([`ToolFamily::detect`]).
    pub fn tool_family(&self) -> ToolFamily {
        self.tool_family
    }

    /// Render the conversation; with `add_generation_prompt` the text ends where the assistant's
    /// reply starts.
    ///
    /// The template comes from the model file, so it runs on a budget: fuel (instructions),
    /// a recursion limit, and at most [`Limits::max_output`] bytes of output; `~`, `+` and `*`
    /// run as size-checked functions (see [`guard`]).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// [`render`](Self::render) with OpenAI `tools` (an array of `{"type": "function",
    /// "function": {"name", "description", "parameters"}}`): checked and written the way
    /// llama.cpp hands them to templates ([`normalize_tools`]) and passed as `tools` when there
    /// is at least one. Messages' `tool_calls` reach the template as llama.cpp passes them.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tools = match tools {
            Some(t) => {
                Some(normalize_tools(t)?).filter(|t| t.as_array().is_some_and(|a| !a.is_empty()))
            }
            None => None,
        };
        let messages: Vec<serde_json::Value> =
            messages.iter().map(ChatMessage::template_value).collect();
        let tmpl = self.env.get_template("chat").map_err(template_error)?;
        let compiled = get_compiled_template(&tmpl);
        let instructions = guard::patch(&compiled.instructions);
        let blocks: BTreeMap<&str, Instructions> = compiled
            .blocks
            .iter()
            .map(|(k, v)| (*k, guard::patch(v)))
            .collect();
        let ctx = minijinja::context! {
            messages => Value::from_serialize(&messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        // Like llama.cpp: `tools` is undefined (not none) without tools.
        let ctx = match &tools {
            Some(t) => minijinja::context! { tools => Value::from_serialize(t), ..ctx },
            None => ctx,
        };
        self.limits.start();
        let mut out = String::new();
        Vm::new(&self.env)
            .eval(
                &instructions,
                ctx,
                &blocks,
                &mut make_string_output(&mut out),
                compiled.initial_auto_escape,
            )
            .map_err(template_error)?;
        if out.len() > self.limits.max_output {
            return Err(Error::Template(format!(
                "the output is {} bytes, more than the {} allowed",
                out.len(),
                self.limits.max_output
            )));
        }
        Ok(out)
    }

    /// Render a sample conversation (system, user, assistant, user): what `chord inspect` and
    /// a file check run to tell a broken template before a chat needs it. Returns the bytes.
    pub fn check(&self) -> Result<usize> {
        let sample = [
            ChatMessage::system("You are a helpful assistant."),
            ChatMessage::user("Hello!"),
            ChatMessage::assistant("Hi! How can I help?"),
            ChatMessage::user("What is 2 + 2?"),
        ];
        self.render(&sample, true).map(|s| s.len())
    }
}

/// Template source larger than this is refused (real templates, tool calling included, are
/// under 20 KB).
pub const MAX_SOURCE: usize = 1 << 20;
/// Output that a whole context may need: 4 bytes a token, at least 1 MiB ...
pub const MIN_OUTPUT_CAP: usize = 1 << 20;
/// ... and at most 16 MiB, whatever `context_length` says.
pub const MAX_OUTPUT_CAP: usize = 16 << 20;
/// Instructions one render may run. Real templates need ~10 k for a short chat and grow
/// linearly with it (Gemma 4's tool-calling template: ~200 per message).
pub const DEFAULT_FUEL: u64 = 4_000_000;
/// Fuel is never lowered below this for long literal text.
const MIN_FUEL: u64 = 1_000;
/// Literal text of the template (emitted without a hook) times the fuel stays under this.
const RAW_BUDGET: u64 = 256 << 20;
/// minijinja counts 1 per nested expression/loop and 5 per macro call; its default (500)
/// lets a self-recursive macro overflow a 1 MiB stack (wasm's main thread).
pub const RECURSION_LIMIT: usize = 120;
/// Items a list built by the template (`+`, `*`, `list`, `batch`, ...) may hold.
pub const MAX_ITEMS: usize = 1 << 20;

/// The budgets one render runs under.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of output, and of any one string the template builds.
    pub max_output: usize,
    /// Instructions.
    pub fuel: u64,
    /// Bytes all size-checked operations may produce in one render (strings built, values
    /// emitted): bounds the work of a template that builds big strings in a loop.
    pub max_total: usize,
    /// What this render produced so far (reset by every render).
    used: Arc<AtomicUsize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::with_output(MIN_OUTPUT_CAP)
    }
}

impl Limits {
    pub fn with_output(max_output: usize) -> Limits {
        Limits {
            max_output,
            fuel: DEFAULT_FUEL,
            max_total: max_output.saturating_mul(32),
            used: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// max(1 MiB, 4 bytes × `n_ctx`), at most 16 MiB.
    pub fn for_context(n_ctx: u64) -> Limits {
        let bytes = usize::try_from(n_ctx.saturating_mul(4)).unwrap_or(usize::MAX);
        Limits::with_output(bytes.clamp(MIN_OUTPUT_CAP, MAX_OUTPUT_CAP))
    }

    fn start(&self) {
        self.used.store(0, Ordering::Relaxed);
    }

    /// Account for a string of `n` bytes about to be built: an error when it, or everything
    /// built in this render, is over budget.
    fn charge(&self, n: usize, what: &str) -> std::result::Result<(), minijinja::Error> {
        if n > self.max_output {
            return Err(too_large(format!(
                "{what} would make a string of {n} bytes (at most {})",
                self.max_output
            )));
        }
        let total = self.used.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if total > self.max_total {
            return Err(too_large(format!(
                "the template built more than {} bytes of text",
                self.max_total
            )));
        }
        Ok(())
    }
}

fn too_large(msg: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, msg)
}

/// The hooks that keep a hostile template within its [`Limits`].
///
/// minijinja bounds loops (fuel) and recursion, but a single operation may still allocate
/// without limit: `s ~ s` doubled 40 times, `" " | indent(10**15)`, a `join` or `tojson` of a
/// list that repeats one big string, a format width of 10^12. So:
/// - the `~`, `+` and `*` instructions are rewritten into calls of size-checked functions
///   (one instruction for one, so jump targets stay valid; the names are not identifiers, so a
///   template cannot shadow them);
/// - the filters and Python methods that can grow a string or a list beyond their inputs are
///   replaced by versions that compute the size first (then run minijinja's own);
/// - every value written to the output (or to a capture) goes through a formatter that counts.
mod guard {
    use std::fmt::Write as _;

    use minijinja::machinery::{Instruction, Instructions};
    use minijinja::value::{Kwargs, Rest, StringInput, ValueKind};
    use minijinja::{Environment, Error, ErrorKind, State, Value};

    use super::{too_large, Limits, MAX_ITEMS};

    const CONCAT: &str = "~";
    const ADD: &str = "+";
    const MUL: &str = "*";

    type R<T> = std::result::Result<T, Error>;

    /// A copy of `src` with the growing operators replaced by calls of the checked functions.
    pub fn patch<'s>(src: &Instructions<'s>) -> Instructions<'s> {
        let mut out = Instructions::new(src.name(), src.source());
        for i in 0..src.len() as u32 {
            let Some(ins) = src.get(i) else { break };
            let ins = match ins {
                Instruction::StringConcat => Instruction::CallFunction(CONCAT, Some(2)),
                Instruction::Add => Instruction::CallFunction(ADD, Some(2)),
                Instruction::Mul => Instruction::CallFunction(MUL, Some(2)),
                other => other.clone(),
            };
            match (src.get_span(i), src.get_line(i)) {
                (Some(span), _) => out.add_with_span(ins, span),
                (None, Some(line)) => out.add_with_line(ins, line.min(u16::MAX as usize) as u16),
                (None, None) => out.add(ins),
            };
        }
        out
    }

    /// `include`, `import` and `extends` would run another template (or this one) without the
    /// rewrite of [`patch`]; chat templates never use them (Hugging Face renders one string).
    pub fn check_single(ins: &Instructions) -> std::result::Result<(), String> {
        let loads = (0..ins.len() as u32).any(|i| {
            matches!(
                ins.get(i),
                Some(Instruction::Include(_) | Instruction::LoadBlocks)
            )
        });
        if loads {
            return Err("`include`, `import` and `extends` are not supported".into());
        }
        Ok(())
    }

    /// minijinja folds constant expressions while compiling, with its own unchecked operators:
    /// `("x" * 10**8) ~ ("x" * 10**8) ~ …` would allocate gigabytes before any hook runs. A
    /// string literal may only be repeated by a small integer literal (`'-' * 20`).
    pub fn check_constants(source: &str) -> std::result::Result<(), String> {
        use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
        let tokens: Vec<Token> = tokenize(
            source,
            false,
            Default::default(),
            WhitespaceConfig::default(),
        )
        .map_while(|t| t.ok().map(|(t, _)| t))
        .filter(|t| !matches!(t, Token::ParenOpen | Token::ParenClose))
        .collect();
        let is_str = |t: Option<&Token>| matches!(t, Some(Token::Str(_) | Token::String(_)));
        let small = |t: Option<&Token>| matches!(t, Some(Token::Int(n)) if *n <= 4096);
        for (i, t) in tokens.iter().enumerate() {
            if !matches!(t, Token::Mul) {
                continue;
            }
            let (before, after) = (
                i.checked_sub(1).and_then(|j| tokens.get(j)),
                tokens.get(i + 1),
            );
            let after2 = tokens.get(i + 2);
            let chained = matches!(after2, Some(Token::Mul | Token::Pow));
            let ok = match (is_str(before), is_str(after)) {
                (true, _) => small(after) && !chained,
                (_, true) => small(before) && !chained,
                _ => true,
            };
            if !ok {
                return Err(
                    "a string literal may only be repeated a small literal number of times \
                     (`'-' * 20`)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The longest literal text the template emits in one instruction.
    pub fn max_raw_len(ins: &Instructions) -> usize {
        (0..ins.len() as u32)
            .filter_map(|i| match ins.get(i) {
                Some(Instruction::EmitRaw(s)) => Some(s.len()),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// A `fmt::Write` that stops with an error past `cap` bytes (optionally keeping the text).
    struct Capped {
        buf: Option<String>,
        len: usize,
        cap: usize,
    }

    impl std::fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.len = self.len.saturating_add(s.len());
            if self.len > self.cap {
                return Err(std::fmt::Error);
            }
            if let Some(b) = &mut self.buf {
                b.push_str(s);
            }
            Ok(())
        }
    }

    impl std::io::Write for Capped {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.len = self.len.saturating_add(b.len());
            if self.len > self.cap {
                return Err(std::io::Error::other("too large"));
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn over(what: &str, cap: usize) -> Error {
        too_large(format!("{what} is more than {cap} bytes"))
    }

    /// The bytes `v` displays as, or an error past `cap` (a list repeating one big string is
    /// small in memory but not when displayed).
    fn display_len(v: &Value, cap: usize, what: &str) -> R<usize> {
        let mut c = Capped {
            buf: None,
            len: 0,
            cap,
        };
        write!(c, "{v}").map_err(|_| over(what, cap))?;
        Ok(c.len)
    }

    /// `a` then `b` as text, within `cap` bytes.
    fn concat(a: &Value, b: &Value, limits: &Limits) -> R<Value> {
        let cap = limits.max_output;
        let mut c = Capped {
            buf: Some(String::new()),
            len: 0,
            cap,
        };
        write!(c, "{a}{b}").map_err(|_| over("`~`", cap))?;
        limits.charge(c.len, "`~`")?;
        Ok(Value::from(c.buf.unwrap_or_default()))
    }

    /// Items of a list or iterable, counted up to `MAX_ITEMS + 1` (a lazy concatenation may not
    /// know its length).
    fn items(v: &Value) -> Option<usize> {
        match v.kind() {
            ValueKind::Seq | ValueKind::Iterable => Some(
                v.len()
                    .unwrap_or_else(|| v.try_iter().map_or(0, |it| it.take(MAX_ITEMS + 1).count())),
            ),
            _ => None,
        }
    }

    fn check_items(n: usize, what: &str) -> R<()> {
        if n > MAX_ITEMS {
            return Err(too_large(format!(
                "{what} would make a list of {n} items (at most {MAX_ITEMS})"
            )));
        }
        Ok(())
    }

    /// minijinja's own operator, for what is not a string or list (numbers).
    fn builtin(op: &str, a: &Value, b: &Value) -> R<Value> {
        use std::sync::OnceLock;
        static ENV: OnceLock<Environment<'static>> = OnceLock::new();
        let env = ENV.get_or_init(Environment::empty);
        let expr = env.compile_expression(match op {
            ADD => "a + b",
            _ => "a * b",
        })?;
        expr.eval(minijinja::context! { a => a, b => b })
    }

    fn add(a: &Value, b: &Value, limits: &Limits) -> R<Value> {
        if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
            let n = x.len().saturating_add(y.len());
            limits.charge(n, "`+`")?;
            return Ok(Value::from([x, y].concat()));
        }
        if let (Some(x), Some(y)) = (items(a), items(b)) {
            check_items(x.saturating_add(y), "`+`")?;
        }
        builtin(ADD, a, b)
    }

    fn mul(a: &Value, b: &Value, limits: &Limits) -> R<Value> {
        let (seq, n) = if b.kind() == ValueKind::Number {
            (a, b)
        } else {
            (b, a)
        };
        if let Some(count) = n.as_usize() {
            if let Some(s) = seq.as_str() {
                limits.charge(s.len().saturating_mul(count), "`*`")?;
            } else if let Some(len) = items(seq) {
                check_items(len.saturating_mul(count), "`*`")?;
                // Repeating a list of big strings is as large as the strings once displayed.
                let shown = display_len(seq, limits.max_output, "a repeated list")?;
                limits.charge(shown.saturating_mul(count), "`*`")?;
            }
        }
        builtin(MUL, a, b)
    }

    /// Output of `replace` at most.
    fn replace_bound(len: usize, from: usize, to: usize) -> usize {
        let n = len.checked_div(from).unwrap_or(len + 1);
        len.saturating_add(n.saturating_mul(to.saturating_sub(from)))
    }

    /// The largest number in a format string bounds its widths and precisions.
    /// minijinja 2.24 reads the key of a format field (`%(key)s`, `{0[key]}`) byte by byte and
    /// panics on a non-ASCII character there (it slices inside the character; found by
    /// fuzz/chat_template): such a field is refused before minijinja sees it.
    fn check_format_fields(fmt: &str) -> R<()> {
        let b = fmt.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let close = match (b[i], b.get(i + 1)) {
                (b'%', Some(b'%')) | (b'{', Some(b'{')) => {
                    i += 2;
                    continue;
                }
                (b'%', Some(b'(')) => b')',
                (b'{', _) => b'}',
                _ => {
                    i += 1;
                    continue;
                }
            };
            let start = i;
            i += 1;
            // In a `{…}` field, an index `[key]` runs to its `]`, past any `}`.
            let mut in_index = false;
            while i < b.len() {
                let c = b[i];
                if !c.is_ascii() {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("`format`: a non-ASCII character in the format field at byte {start} is not supported"),
                    ));
                }
                if in_index {
                    in_index = c != b']';
                } else if c == close {
                    break;
                } else if close == b'}' && c == b'[' {
                    in_index = true;
                }
                i += 1;
            }
        }
        Ok(())
    }

    fn format_bound(fmt: &str, args: &[Value], cap: usize) -> R<usize> {
        check_format_fields(fmt)?;
        let mut widest = 0u128;
        let mut run = 0u128;
        for c in fmt.chars().chain(std::iter::once(' ')) {
            match c.to_digit(10) {
                Some(d) => run = run.saturating_mul(10).saturating_add(d as u128),
                None => {
                    widest = widest.max(run);
                    run = 0;
                }
            }
        }
        let widest = usize::try_from(widest).unwrap_or(usize::MAX);
        if widest > cap {
            return Err(over("a format width", cap));
        }
        let mut n = fmt.len();
        for a in args {
            n = n.saturating_add(display_len(a, cap, "a format argument")?);
            n = n.saturating_add(widest);
        }
        Ok(n)
    }

    fn indent(
        limits: &Limits,
        value: StringInput<'_>,
        width: Option<usize>,
        first: Option<bool>,
        blank: Option<bool>,
        kwargs: Kwargs,
    ) -> R<Value> {
        let w = match width {
            Some(w) => w,
            None => kwargs.peek::<Option<usize>>("width")?.unwrap_or(4),
        };
        let s = value.as_str();
        let lines = s.bytes().filter(|&b| b == b'\n').count() + 1;
        limits.charge(s.len().saturating_add(lines.saturating_mul(w)), "`indent`")?;
        minijinja::filters::indent(value, width, first, blank, kwargs)
    }

    fn join(
        limits: &Limits,
        state: &State,
        value: &Value,
        joiner: Option<StringInput<'_>>,
    ) -> R<Value> {
        let sep = joiner.as_ref().map_or(0, |j| j.as_str().len());
        let n = items(value).unwrap_or(0);
        check_items(n, "`join`")?;
        let cap = limits.max_output;
        let total = display_len(value, cap, "`join`")?;
        limits.charge(total.saturating_add(n.saturating_mul(sep)), "`join`")?;
        minijinja::filters::join(state, value, joiner)
    }

    /// Python's `json.dumps` (HF's and llama.cpp's `tojson`), see [`crate::pyjson`]. A bool
    /// as the first argument is HF's `ensure_ascii`, a number minijinja's `indent`.
    fn tojson(limits: &Limits, value: &Value, first: Option<Value>, kwargs: Kwargs) -> R<Value> {
        let ascii = first.as_ref().filter(|v| v.kind() == ValueKind::Bool);
        let indent = first.as_ref().filter(|v| v.kind() != ValueKind::Bool);
        let mut opts = crate::pyjson::Options::from_args(indent, &kwargs)?;
        if let Some(a) = ascii {
            opts.ensure_ascii = a.is_true();
        }
        let width = opts.indent.unwrap_or(0);
        if width > 64 {
            return Err(too_large(format!("`tojson` indent {width} (at most 64)")));
        }
        let out = crate::pyjson::to_string(value, &opts, limits.max_output)?;
        limits.charge(out.len(), "`tojson`")?;
        Ok(Value::from_safe_string(out))
    }

    fn method_check(limits: &Limits, value: &Value, method: &str, args: &[Value]) -> R<()> {
        let Some(s) = value.as_str() else {
            return Ok(());
        };
        match method {
            "replace" => {
                let len = |i: usize| args.get(i).and_then(Value::as_str).map_or(0, str::len);
                limits.charge(replace_bound(s.len(), len(0), len(1)), "`replace`")
            }
            "join" => {
                if let Some(list) = args.first() {
                    check_items(items(list).unwrap_or(0), "`join`")?;
                    let n = items(list).unwrap_or(0);
                    let shown = display_len(list, limits.max_output, "`join`")?;
                    limits.charge(shown.saturating_add(n.saturating_mul(s.len())), "`join`")?;
                }
                Ok(())
            }
            "format" => {
                let n = format_bound(s, args, limits.max_output)?;
                limits.charge(n, "`format`")
            }
            _ => Ok(()),
        }
    }

    /// The filters replaced by size-checked versions.
    pub fn install(env: &mut Environment<'static>, limits: Limits) {
        let l = limits.clone();
        env.add_function(CONCAT, move |a: &Value, b: &Value| concat(a, b, &l));
        let l = limits.clone();
        env.add_function(ADD, move |a: &Value, b: &Value| add(a, b, &l));
        let l = limits.clone();
        env.add_function(MUL, move |a: &Value, b: &Value| mul(a, b, &l));
        let l = limits.clone();
        env.add_filter(
            "indent",
            move |v: StringInput<'_>,
                  w: Option<usize>,
                  f: Option<bool>,
                  b: Option<bool>,
                  k: Kwargs| { indent(&l, v, w, f, b, k) },
        );
        let l = limits.clone();
        env.add_filter(
            "join",
            move |st: &State, v: &Value, j: Option<StringInput<'_>>| join(&l, st, v, j),
        );
        let l = limits.clone();
        env.add_filter(
            "replace",
            move |st: &State, v: StringInput<'_>, from: StringInput<'_>, to: StringInput<'_>| {
                let n = replace_bound(v.as_str().len(), from.as_str().len(), to.as_str().len());
                l.charge(n, "`replace`")?;
                minijinja::filters::replace(st, v, from, to)
            },
        );
        let l = limits.clone();
        env.add_filter("format", move |st: &State, f: &Value, args: Rest<Value>| {
            let n = format_bound(f.as_str().unwrap_or(""), &args, l.max_output)?;
            l.charge(n, "`format`")?;
            minijinja::filters::format(st, f, args)
        });
        let l = limits.clone();
        env.add_filter("tojson", move |v: &Value, i: Option<Value>, k: Kwargs| {
            tojson(&l, v, i, k)
        });
        let l = limits.clone();
        env.add_filter("string", move |st: &State, v: &Value| {
            let n = display_len(v, l.max_output, "`string`")?;
            l.charge(n, "`string`")?;
            minijinja::filters::string(st, v)
        });
        let l = limits.clone();
        env.add_filter("pprint", move |v: &Value| {
            let mut c = Capped {
                buf: None,
                len: 0,
                cap: l.max_output,
            };
            write!(c, "{v:#?}").map_err(|_| over("`pprint`", l.max_output))?;
            l.charge(c.len, "`pprint`")?;
            Ok::<_, Error>(minijinja::filters::pprint(v))
        });
        env.add_filter("list", |st: &State, v: Value| {
            check_items(items(&v).unwrap_or(0), "`list`")?;
            if let Some(s) = v.as_str() {
                check_items(s.chars().count(), "`list`")?;
            }
            minijinja::filters::list(st, v)
        });
        env.add_filter(
            "batch",
            |st: &State, v: Value, n: usize, fill: Option<Value>| {
                check_items(n, "`batch`")?;
                check_items(items(&v).unwrap_or(0), "`batch`")?;
                minijinja::filters::batch(st, v, n, fill)
            },
        );
        env.add_filter(
            "slice",
            |st: &State, v: Value, n: usize, fill: Option<Value>| {
                check_items(n, "`slice`")?;
                check_items(items(&v).unwrap_or(0), "`slice`")?;
                minijinja::filters::slice(st, v, n, fill)
            },
        );
        env.add_filter("chain", |st: &State, v: Value, rest: Rest<Value>| {
            let mut n = items(&v).unwrap_or(0);
            for r in rest.iter() {
                n = n.saturating_add(items(r).unwrap_or(0));
            }
            check_items(n, "`chain`")?;
            minijinja::filters::chain(st, v, rest)
        });
        let l = limits.clone();
        env.set_unknown_method_callback(move |st, v, method, args| {
            method_check(&l, v, method, args)?;
            minijinja_contrib::pycompat::unknown_method_callback(st, v, method, args)
        });
        // Every value emitted (to the output or a capture) is counted.
        env.set_formatter(move |out, _state, v| {
            let mut c = Capped {
                buf: Some(String::new()),
                len: 0,
                cap: limits.max_output,
            };
            write!(c, "{v}").map_err(|_| over("an emitted value", limits.max_output))?;
            limits.charge(c.len, "the output")?;
            out.write_str(c.buf.as_deref().unwrap_or(""))
                .map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write the output"))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, GgufValue)]) -> Metadata {
        let mut m = Metadata::default();
        for (k, v) in pairs {
            m.0.insert((*k).to_owned(), v.clone());
        }
        m
    }

    fn s(v: &str) -> GgufValue {
        GgufValue::String(v.to_owned())
    }

    #[test]
    fn gemma_builtin_merges_system_prompt() {
        let t = ChatTemplate::from_metadata(&md(&[("general.architecture", s("gemma3"))])).unwrap();
        assert_eq!(t.source(), TemplateSource::BuiltinGemma);
        let out = t
            .render(
                &[
                    ChatMessage::system("Be brief."),
                    ChatMessage::user("Hi"),
                    ChatMessage::assistant("Hello!"),
                    ChatMessage::user("2+2?"),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n\
             <start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn chatml_fallback() {
        let t = ChatTemplate::from_metadata(&md(&[("general.architecture", s("qwen2"))])).unwrap();
        assert_eq!(t.source(), TemplateSource::BuiltinChatMl);
        let out = t.render(&[ChatMessage::user("x")], false).unwrap();
        assert_eq!(out, "<|im_start|>user\nx<|im_end|>\n");
    }

    #[test]
    fn hf_features_and_errors() {
        let src = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}\
                   {{ bos_token }}{{ m.content.strip().upper() }}{% if m.content.startswith(' a') %}!{% endif %}\
                   {% if not loop.last %}|{% endif %}{% endfor %}{{ eos_token }}";
        let t = ChatTemplate::from_source(src, "<s>", "</s>").unwrap();
        let out = t
            .render(&[ChatMessage::user(" a b "), ChatMessage::user("c")], false)
            .unwrap();
        assert_eq!(out, "<s>A B!|<s>C</s>");
        let err = t.render(&[ChatMessage::system("x")], false).unwrap_err();
        assert!(
            matches!(err, Error::Template(ref m) if m.contains("no system")),
            "{err}"
        );
        assert!(matches!(
            ChatTemplate::from_source("{% if %}", "", ""),
            Err(Error::Template(_))
        ));
        let bad = md(&[("tokenizer.chat_template", GgufValue::U32(3))]);
        assert!(matches!(
            ChatTemplate::from_metadata(&bad),
            Err(Error::Template(_))
        ));
    }

    #[test]
    fn tools_and_tool_messages_reach_the_template() {
        let src = "{% if tools %}{% for t in tools %}{{ t | tojson }}\n{% endfor %}{% endif %}\
                   {% for m in messages %}{{ m.role }}:{{ m.content }}\
                   {% for c in m.tool_calls or [] %}[{{ c.function.name }} {{ c.function.arguments | tojson }} {{ c.id }}]{% endfor %}\
                   {% if m.tool_call_id %}({{ m.tool_call_id }} {{ m.name }}){% endif %}|{% endfor %}";
        let t = ChatTemplate::from_source(src, "", "").unwrap();
        let tools = serde_json::json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "b": 1.0, "a": "<'é'>"}}}]);
        let msgs = [
            ChatMessage::user("hi"),
            ChatMessage::assistant_tool_calls(
                "",
                vec![ToolCall {
                    id: "call_0".into(),
                    name: "f".into(),
                    arguments: r#"{"z": 1, "a": [true, null]}"#.into(),
                }],
            ),
            ChatMessage::tool_result("call_0", Some("f".into()), "42"),
        ];
        let out = t.render_with_tools(&msgs, Some(&tools), false).unwrap();
        assert_eq!(
            out,
            "{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"\", \"parameters\": {\"type\": \"object\", \"b\": 1.0, \"a\": \"<'é'>\"}}}\n\
             user:hi|assistant:[f {\"z\": 1, \"a\": [true, null]} call_0]|tool:42(call_0 f)|"
        );
        // No tools, or an empty list: `tools` is not defined.
        let plain = t.render(&msgs[..1], false).unwrap();
        assert_eq!(plain, "user:hi|");
        let probe = ChatTemplate::from_source("{{ tools is defined }}", "", "").unwrap();
        assert_eq!(probe.render(&msgs[..1], false).unwrap(), "False");
        let one = probe.render_with_tools(&msgs[..1], Some(&tools), false);
        assert_eq!(one.unwrap(), "True");
        let empty = serde_json::json!([]);
        assert_eq!(
            t.render_with_tools(&msgs[..1], Some(&empty), false)
                .unwrap(),
            plain
        );
        assert!(matches!(
            t.render_with_tools(&msgs[..1], Some(&serde_json::json!({})), false),
            Err(Error::Invalid(_))
        ));
        // Messages read from OpenAI JSON: null content, tool calls with string arguments.
        let m: ChatMessage = serde_json::from_value(serde_json::json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}))
        .unwrap();
        assert_eq!(m.content, "");
        assert_eq!(m.tool_calls.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            serde_json::to_string(&ChatMessage::user("x")).unwrap(),
            r#"{"role":"user","content":"x"}"#
        );
    }

    #[test]
    fn non_ascii_format_keys_are_refused_not_a_panic() {
        // Found by fuzz/chat_template: minijinja 2.24 slices inside the character and panics.
        for src in [
            r#"{{ "%(é)s" | format(x=1) }}"#,
            r#"{{ "{0[é]}".format([1]) }}"#,
            r#"{{ "%((ë((5,77" | format("x") }}"#,
            r#"{{ "L[{{{{{x[{{} {{:é]".format("x/") }}"#,
        ] {
            let t = ChatTemplate::from_source(src, "", "").unwrap();
            let e = t.check().unwrap_err().to_string();
            assert!(e.contains("non-ASCII"), "{src}: {e}");
        }
        // Non-ASCII text outside the fields still formats.
        let t = ChatTemplate::from_source(r#"{{ "é %s ü" | format("x") }}"#, "", "").unwrap();
        assert_eq!(t.check().unwrap(), "é x ü".len());
    }
}
