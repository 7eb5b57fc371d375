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

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gguf::{Array, Metadata, Value as GgufValue};

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
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
        match md.get("tokenizer.chat_template") {
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
        }
    }

    /// Compile a template from Jinja source.
    pub fn new(
        source: String,
        which: TemplateSource,
        bos_token: String,
        eos_token: String,
    ) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source)
            .map_err(template_error)?;
        Ok(ChatTemplate {
            env,
            source: which,
            bos_token,
            eos_token,
        })
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

    /// Render the conversation; with `add_generation_prompt` the text ends where the assistant's
    /// reply starts.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(template_error)?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        tmpl.render(ctx).map_err(template_error)
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
}
