//! One reply: the conversation's session (kept per chat, least recently used first out), the
//! prompt (chat template or raw), sampling, stop strings and structured output, and the tokens
//! streamed to the page as they come.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use chord_app::protocol::{ChatTurn, FromWorker, GenParams, OutputFormat};
use chord_app::stop::StopStrings;
use inference::backend::BackendChoice;
use inference::conversation::{messages_out_of_view_with_tools, ChatPrompt};
use inference::engine::{GenerateParams, KvSnapshot, Session, SessionOptions, TokenSink};
use inference::grammar::{Grammar, Matcher, TokenTable};
use inference::loader::LoadedModel;
use inference::sampler::SamplerParams;
use inference::tool_calls::{forced_call_grammar, parse_tool_calls, ToolCallStream, ToolChoice};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::{
    post, scope, ChatSession, State, MAX_SESSIONS, MAX_SNAPSHOT_BYTES, SESSION_BUDGET_BYTES,
};

/// The session of `chat_id` (taken out of the state while it runs), made anew where there is
/// none or its context size changed — from the conversation's saved cache where one came and
/// fits. Returns the session and whether it was restored.
fn take_session(
    state: &Rc<RefCell<State>>,
    loaded: &LoadedModel,
    chat_id: &str,
    n_ctx: usize,
) -> Result<(Session, bool), String> {
    let mut s = state.borrow_mut();
    let saved = s
        .saved_kv
        .iter()
        .position(|(c, _)| c == chat_id)
        .map(|i| s.saved_kv.remove(i).1);
    if let Some(i) = s.sessions.iter().position(|c| c.chat_id == chat_id) {
        let c = s.sessions.remove(i);
        if c.session.n_ctx() == n_ctx {
            return Ok((c.session, false));
        }
    }
    drop(s);
    let opts = SessionOptions {
        n_ctx,
        threads: crate::cpu_threads(),
        activations: inference::quant::Activations::Q8,
    };
    let mut session = Session::new(loaded, &opts).map_err(|e| e.to_string())?;
    let restored = saved.is_some_and(|b| {
        let r = KvSnapshot::from_bytes(&b).and_then(|snap| session.restore(&snap));
        if let Err(e) = &r {
            web_sys::console::info_1(&format!("not restoring the saved cache: {e}").into());
        }
        r.is_ok()
    });
    Ok((session, restored))
}

/// Send the session's cache for the UI to save with the conversation.
async fn send_snapshot(chat_id: &str, session: &Session) {
    let snap = match session.snapshot().await {
        Ok(s) if s.byte_len() <= MAX_SNAPSHOT_BYTES => s,
        _ => return,
    };
    let bytes = snap.to_bytes();
    drop(snap);
    let buf = js_sys::Uint8Array::from(&bytes[..]).buffer();
    post(&FromWorker::KvSnapshot {
        chat_id: chat_id.to_owned(),
    });
    let _ = scope().post_message_with_transfer(&buf, &js_sys::Array::of1(&buf));
}

/// Put a session back as the most recently used; older ones go while over the budget.
fn keep_session(state: &Rc<RefCell<State>>, chat_id: &str, session: Session) {
    let mut s = state.borrow_mut();
    s.sessions.push(ChatSession {
        chat_id: chat_id.to_owned(),
        session,
    });
    let bytes = |v: &[ChatSession]| -> u64 {
        v.iter()
            .map(|c| c.session.backend().kv_bytes())
            .sum::<u64>()
    };
    while s.sessions.len() > 1
        && (s.sessions.len() > MAX_SESSIONS || bytes(&s.sessions) > SESSION_BUDGET_BYTES)
    {
        s.sessions.remove(0);
    }
}

/// Streams tokens to the UI, yielding to the worker's event loop after each, so `Stop` is read.
/// Text is held back while it could be the start of a stop string, and the reply ends at one.
struct PostTokens<'a> {
    stop: &'a Cell<bool>,
    channel: Option<web_sys::MessageChannel>,
    sent: u32,
    stops: StopStrings,
    /// The reply's text so far (kept only when it is parsed for tool calls).
    text: Option<String>,
    /// With tools: the reply's content and tool-call deltas as it streams.
    calls: Option<ToolCallStream>,
}

impl PostTokens<'_> {
    fn post_deltas(&mut self, piece: &str) {
        if let Some(c) = self.calls.as_mut() {
            for delta in c.push(piece) {
                post(&FromWorker::ToolDelta { delta });
            }
        }
    }
}

impl TokenSink for PostTokens<'_> {
    async fn piece(&mut self, id: Option<u32>, text: &str) -> bool {
        self.sent += u32::from(id.is_some());
        let piece = self.stops.push(text);
        if let Some(t) = self.text.as_mut() {
            t.push_str(&piece);
        }
        self.post_deltas(&piece);
        if self.stops.hit() {
            if !piece.is_empty() {
                post(&FromWorker::Token { id: None, piece });
            }
            return false;
        }
        post(&FromWorker::Token { id, piece });
        yield_now(self.channel.as_ref()).await;
        !self.stop.get()
    }
}

/// The grammar a reply must follow, as a token matcher for this model (its token table is built
/// once per model: `State::token_table`).
fn matcher(
    state: &Rc<RefCell<State>>,
    loaded: &LoadedModel,
    grammar: Grammar,
) -> Result<Matcher, String> {
    let table = state.borrow().token_table.clone();
    let table = match table {
        Some(t) => t,
        None => {
            let t = Arc::new(TokenTable::new(&loaded.model.tokenizer));
            state.borrow_mut().token_table = Some(t.clone());
            t
        }
    };
    Ok(Arc::new(grammar).matcher(&table))
}

/// What constrains a reply: a required tool call, or the output format asked for (not both).
fn reply_grammar(
    format: Option<&OutputFormat>,
    tools: Option<&serde_json::Value>,
    choice: &ToolChoice,
    model: &inference::model::Model,
) -> Result<Option<Grammar>, String> {
    if choice.forces_a_call() {
        let tools = tools.ok_or("tool_choice requires a call, but no tools were given")?;
        if format.is_some() {
            return Err("tool_choice \"required\" or a named tool cannot be combined with response_format or a grammar".into());
        }
        return forced_call_grammar(tools, model.chat.tool_family(), choice)
            .map_err(|e| e.to_string());
    }
    Ok(match format {
        None => None,
        Some(OutputFormat::JsonObject) => Some(Grammar::json_object()),
        Some(OutputFormat::JsonSchema { schema }) => {
            Some(Grammar::json_schema(schema).map_err(|e| format!("response_format: {e}"))?)
        }
        Some(OutputFormat::Grammar { grammar }) => {
            Some(Grammar::gbnf(grammar).map_err(|e| format!("grammar: {e}"))?)
        }
    })
}

/// Run one reply, posting `Token`s as they come and then the cache to save; returns `Done`.
pub(crate) async fn reply(
    state: &Rc<RefCell<State>>,
    loaded: &Rc<LoadedModel>,
    chat_id: &str,
    messages: &[ChatTurn],
    params: &GenParams,
    stop: &Cell<bool>,
) -> Result<FromWorker, String> {
    let model = &loaded.model;
    let n_ctx = match params.n_ctx {
        0 => 2048,
        n => n as usize,
    }
    .min(model.hp.n_ctx_train);
    let choice = match &params.tool_choice {
        Some(v) => ToolChoice::from_openai(v).map_err(|e| e.to_string())?,
        None => ToolChoice::Auto,
    };
    let tools = params
        .tools
        .as_ref()
        .filter(|_| !params.raw && choice != ToolChoice::None);
    let prompt = if params.raw {
        let text = messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map_or("", |m| m.content.as_str());
        ChatPrompt::raw(model, text)
    } else {
        ChatPrompt::with_tools(model, messages, tools).map_err(|e| e.to_string())?
    };
    let gp = GenerateParams {
        max_tokens: params.max_tokens.max(1) as usize,
        sampler: SamplerParams {
            temperature: params.temperature,
            top_k: params.top_k as usize,
            top_p: params.top_p,
            seed: params.seed,
            min_p: params
                .min_p
                .filter(|p| p.is_finite())
                .map_or(SamplerParams::default().min_p, |p| p.clamp(0.0, 1.0)),
            ..SamplerParams::default()
        },
        ignore_eos: params.ignore_eos,
        keep: Some(prompt.keep),
    };
    let (mut session, _restored) = take_session(state, loaded, chat_id, n_ctx)?;
    if !params.reuse {
        session.reset();
    }
    let channel = state.borrow().yield_channel.clone();
    let grammar = match reply_grammar(params.format.as_ref(), tools, &choice, model)? {
        Some(g) => Some(matcher(state, loaded, g)?),
        None => None,
    };
    let mut sink = PostTokens {
        stop,
        channel,
        sent: 0,
        stops: StopStrings::new(&params.stop),
        text: tools.map(|_| String::new()),
        calls: tools.map(|_| ToolCallStream::new(model.chat.tool_family())),
    };
    let result = session
        .generate_constrained(&prompt.tokens, &gp, grammar, &mut sink)
        .await;
    let tail = sink.stops.finish();
    if let Some(t) = sink.text.as_mut() {
        t.push_str(&tail);
    }
    sink.post_deltas(&tail);
    if !tail.is_empty() {
        post(&FromWorker::Token {
            id: None,
            piece: tail,
        });
    }
    let g = match result {
        Ok(g) => g,
        Err(e @ inference::Error::Gpu(_)) => {
            // The GPU failed (e.g. device lost): every session on it is gone; the weights lived
            // on the GPU only, so the model must be loaded again.
            let mut s = state.borrow_mut();
            s.sessions.clear();
            s.model = None;
            drop(s);
            let backend = BackendChoice::cpu(format!("WebGPU failed during a reply: {e}"));
            post(&FromWorker::Backend { backend });
            return Err(format!(
                "The GPU failed ({e}). The model's weights lived on the GPU only: load the model \
                 again (choose the CPU engine in Settings if this repeats)."
            ));
        }
        Err(e) => {
            // The cache may hold part of the failed turn: start the conversation afresh next time.
            session.reset();
            keep_session(state, chat_id, session);
            return Err(e.to_string());
        }
    };
    let trimmed = if params.raw {
        0
    } else {
        messages_out_of_view_with_tools(
            model,
            messages,
            tools,
            &prompt.tokens,
            session.keep(),
            session.dropped(),
        )
        .unwrap_or(0) as u32
    };
    // With tools: the reply as content and OpenAI tool calls, the way this template writes them
    // (the stream's last deltas first).
    if let Some(c) = sink.calls.take() {
        for delta in c.finish() {
            post(&FromWorker::ToolDelta { delta });
        }
    }
    let parsed = sink
        .text
        .as_deref()
        .map(|t| parse_tool_calls(t, model.chat.tool_family()));
    let done = FromWorker::Done {
        tokens: g.tokens.len() as u32,
        prompt_tokens: g.prompt_tokens as u32,
        reused_tokens: g.reused as u32,
        evaluated_tokens: g.evaluated as u32,
        prefill_tok_s: g.prefill_tok_s(),
        // Engine time only: the yields to the event loop are not counted.
        decode_tok_s: g.decode_tok_s(),
        ttft_ms: g.prefill_s * 1e3,
        stop: if sink.stops.hit() {
            "stop".to_owned()
        } else {
            g.stop.name().to_owned()
        },
        trimmed,
        tool_calls: parsed
            .as_ref()
            .map(|p| p.tool_calls.clone())
            .unwrap_or_default(),
        content: parsed.map(|p| p.content),
    };
    // The cache goes out before `Done`, so the next message can already use the session.
    if params.reuse && params.snapshot {
        send_snapshot(chat_id, &session).await;
    }
    keep_session(state, chat_id, session);
    Ok(done)
}

/// Let the worker's event loop run (so queued messages such as `Stop` are handled), without
/// `setTimeout`'s 4 ms clamp: a message to ourselves through a `MessageChannel`.
async fn yield_now(channel: Option<&web_sys::MessageChannel>) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let posted = channel.is_some_and(|ch| {
            ch.port1().set_onmessage(Some(&resolve));
            ch.port2().post_message(&JsValue::NULL).is_ok()
        });
        if !posted {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}
