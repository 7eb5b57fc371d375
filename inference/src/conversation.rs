//! A chat as tokens: the conversation rendered with the model's chat template and tokenized in
//! full, every turn. The [`crate::engine::Session`] then evaluates only what its cache does not
//! already hold (token ids are compared, not text, so tokenizer boundaries cannot fool it), and
//! shifts the context when it fills, never dropping the first [`ChatPrompt::keep`] tokens (the
//! template's head and the system prompt).

use crate::chat::ChatMessage;
use crate::engine::common_prefix;
use crate::error::{Error, Result};
use crate::model::Model;

/// The prompt of a chat turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatPrompt {
    /// The whole conversation, templated, with the generation prompt, BOS included if the model
    /// adds one.
    pub tokens: Vec<u32>,
    /// Leading tokens a context shift keeps: BOS, the template's head and the system prompt.
    pub keep: usize,
}

impl ChatPrompt {
    /// Render `messages` (roles `system`, `user`, `assistant`) with the model's chat template,
    /// ready for the assistant's reply.
    pub fn new(model: &Model, messages: &[ChatMessage]) -> Result<ChatPrompt> {
        Self::with_tools(model, messages, None)
    }

    /// [`new`](Self::new) with OpenAI `tools` rendered by the template (see
    /// [`crate::chat::ChatTemplate::render_with_tools`]); messages may carry `tool_calls` and
    /// `tool` results. Templates that put the tools in the system turn (Qwen, Hermes) make
    /// them part of `keep`.
    pub fn with_tools(
        model: &Model,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
    ) -> Result<ChatPrompt> {
        if messages.is_empty() {
            return Err(Error::Invalid("the conversation is empty".into()));
        }
        let tok = &model.tokenizer;
        let text = model.chat.render_with_tools(messages, tools, true)?;
        let tokens = tok.encode(&text, true);
        // What the template writes before the first non-system message.
        let n_sys = messages.iter().take_while(|m| m.role == "system").count();
        let bos = usize::from(tok.bos_id().is_some() && tokens.first() == tok.bos_id().as_ref());
        let keep = match model
            .chat
            .render_with_tools(&messages[..n_sys], tools, false)
        {
            Ok(head) if !head.is_empty() => {
                common_prefix(&tok.encode(&head, true), &tokens).max(bos)
            }
            _ => bos,
        };
        Ok(ChatPrompt { tokens, keep })
    }

    /// Completion mode: `text` as it is, no template.
    pub fn raw(model: &Model, text: &str) -> ChatPrompt {
        let tok = &model.tokenizer;
        let tokens = tok.encode(text, true);
        let keep = usize::from(tok.bos_id().is_some() && tokens.first() == tok.bos_id().as_ref());
        ChatPrompt { tokens, keep }
    }
}

/// How many of `messages` are partly or wholly out of the model's view when tokens
/// `keep..keep + dropped` of their prompt ([`ChatPrompt::new`]) are no longer in the cache:
/// those that start there.
pub fn messages_out_of_view(
    model: &Model,
    messages: &[ChatMessage],
    prompt: &[u32],
    keep: usize,
    dropped: usize,
) -> Result<usize> {
    messages_out_of_view_with_tools(model, messages, None, prompt, keep, dropped)
}

/// [`messages_out_of_view`] for a prompt made by [`ChatPrompt::with_tools`] with `tools`.
pub fn messages_out_of_view_with_tools(
    model: &Model,
    messages: &[ChatMessage],
    tools: Option<&serde_json::Value>,
    prompt: &[u32],
    keep: usize,
    dropped: usize,
) -> Result<usize> {
    if dropped == 0 {
        return Ok(0);
    }
    let before = |limit: usize| starting_before(model, messages, tools, prompt, limit);
    Ok(before(keep + dropped)? - before(keep)?)
}

/// The number of messages whose tokens start before position `limit` of `prompt` (binary
/// search over the rendered prefixes: a few renders, not one per message).
fn starting_before(
    model: &Model,
    messages: &[ChatMessage],
    tools: Option<&serde_json::Value>,
    prompt: &[u32],
    limit: usize,
) -> Result<usize> {
    let start = |i: usize| -> Result<usize> {
        if i == 0 {
            return Ok(0);
        }
        let text = model.chat.render_with_tools(&messages[..i], tools, false)?;
        Ok(common_prefix(&model.tokenizer.encode(&text, true), prompt))
    };
    // Invariant: messages lo.. start at or after `limit` from `hi` on; start(0) = 0.
    if limit == 0 {
        return Ok(0);
    }
    let (mut lo, mut hi) = (1, messages.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if start(mid)? < limit {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo.min(messages.len()))
}
