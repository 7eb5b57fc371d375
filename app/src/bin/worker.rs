//! The engine's dedicated Web Worker: receives the model bytes and chat requests from the UI,
//! runs the model, streams tokens back (see `chord_app::protocol`). The UI thread never runs the
//! model. Generation yields to this worker's event loop after every token, so `Stop` (and any
//! other message) is handled mid-reply.
//!
//! Loading goes through the engine's `Loader`: at `LoadStart` it decides between WebGPU and the
//! CPU engine (the user's choice; *Automatic* skips software adapters) and says why; on WebGPU
//! each weight matrix is uploaded, still quantized, the moment its bytes have arrived, and never
//! kept in wasm memory. Chunks that come while the device opens wait in a queue.
//!
//! Conversations: one engine `Session` (a KV cache) per open conversation, least recently used
//! first out when over the memory budget; a reply evaluates only the tokens its conversation's
//! cache does not hold (a new turn: its new tokens; Regenerate: one), and a full context is
//! shifted rather than refused. A GPU failure mid-reply asks for a reload, since the weights are
//! on the GPU only.
//!
//! Failure: a panic cannot unwind in wasm, so it leaves the engine's state unusable (a `RefCell`
//! still borrowed, a half-built model). The panic hook therefore says `Panic` to the page, which
//! terminates this worker and starts a fresh one; a `Heartbeat` every second lets the page see a
//! hung engine too. A message that finds the state still borrowed (a trap that bypassed the hook)
//! is answered with `Panic` as well. Bad model bytes are `Rejected` (the page deletes its cached
//! copy); every other failure is an `Error`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use chord_app::protocol::{ChatTurn, FromWorker, GenParams, ToWorker, HEARTBEAT_MS};
use inference::backend::{BackendChoice, BackendPref};
use inference::chat::ChatMessage;
use inference::conversation::{messages_out_of_view, ChatPrompt};
use inference::engine::{GenerateParams, KvSnapshot, Session, SessionOptions, TokenSink};
use inference::loader::{LoadOptions, LoadedModel, Loader};
use inference::sampler::SamplerParams;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

/// Sessions kept for other conversations while their KV caches fit this budget (the current one
/// always stays).
const SESSION_BUDGET_BYTES: u64 = 512 << 20;
const MAX_SESSIONS: usize = 4;

/// A model being received.
struct Loading {
    name: String,
    /// `None` until the backend is decided (the GPU device is open or refused).
    loader: Option<Loader>,
    /// Chunks that arrived before that.
    queue: Vec<Vec<u8>>,
    /// `LoadEnd` arrived while chunks were still queued.
    ended: bool,
    header_ok: bool,
    /// The engine the user asked for.
    pref: BackendPref,
}

/// A conversation's session.
struct ChatSession {
    chat_id: String,
    session: Session,
}

#[derive(Default)]
struct State {
    loading: Option<Loading>,
    model: Option<Rc<LoadedModel>>,
    /// Most recently used last.
    sessions: Vec<ChatSession>,
    generating: bool,
    stop: Rc<Cell<bool>>,
    /// Bumped by every load: a GPU upload that finishes after a newer load started is dropped.
    load_seq: u64,
    /// A message to ourselves: how the worker yields to its event loop between tokens.
    yield_channel: Option<web_sys::MessageChannel>,
    /// `KvRestore` came: the next binary message is this conversation's saved cache.
    expect_kv: Option<String>,
    /// Saved caches received, restored when their conversation's next reply starts.
    saved_kv: Vec<(String, Vec<u8>)>,
}

/// Snapshots larger than this are not sent for saving.
const MAX_SNAPSHOT_BYTES: usize = 256 << 20;

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(msg: &FromWorker) {
    let _ = scope().post_message(&JsValue::from_str(&msg.to_json()));
}

fn post_error(message: impl Into<String>) {
    post(&FromWorker::Error {
        message: message.into(),
    });
}

/// The engine refused the model's bytes (the file is bad); a GPU failure is not the file's fault.
fn post_load_error(name: &str, e: &inference::Error) {
    let message = format!("Cannot load {name}: {e}");
    post(&match e {
        inference::Error::Gpu(_) => FromWorker::Error { message },
        _ => FromWorker::Rejected { message },
    });
}

fn main() {
    // Tell the page before the trap: it restarts the worker (the state is unusable after it).
    std::panic::set_hook(Box::new(|info| {
        post(&FromWorker::Panic {
            message: info.to_string(),
        });
        console_error_panic_hook::hook(info);
    }));
    let state = Rc::new(RefCell::new(State {
        yield_channel: web_sys::MessageChannel::new().ok(),
        ..Default::default()
    }));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        handle(&state, ev.data());
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let heartbeat = Closure::<dyn FnMut()>::new(|| post(&FromWorker::Heartbeat));
    let _ = scope().set_interval_with_callback_and_timeout_and_arguments_0(
        heartbeat.as_ref().unchecked_ref(),
        HEARTBEAT_MS,
    );
    heartbeat.forget();
    post(&FromWorker::Ready);
}

fn handle(state: &Rc<RefCell<State>>, data: JsValue) {
    // Every borrow ends before its function returns to the event loop, so a borrowed state here
    // means a trap cut one short: nothing can be trusted, ask the page for a fresh worker.
    if state.try_borrow_mut().is_err() {
        post(&FromWorker::Panic {
            message: "the engine's state was left in use by an earlier failure".into(),
        });
        return;
    }
    if let Some(text) = data.as_string() {
        match serde_json::from_str::<ToWorker>(&text) {
            Ok(msg) => handle_message(state, msg),
            Err(e) => post_error(format!("worker: bad message: {e}")),
        }
    } else if data.is_instance_of::<js_sys::ArrayBuffer>()
        || data.is_instance_of::<js_sys::Uint8Array>()
    {
        let bytes = js_sys::Uint8Array::new(&data).to_vec();
        let kv_for = state.borrow_mut().expect_kv.take();
        match kv_for {
            Some(chat_id) => {
                let mut s = state.borrow_mut();
                s.saved_kv.retain(|(c, _)| *c != chat_id);
                s.saved_kv.push((chat_id, bytes));
                if s.saved_kv.len() > MAX_SESSIONS {
                    s.saved_kv.remove(0);
                }
            }
            None => load_chunk(state, bytes),
        }
    } else {
        post_error("worker: unexpected message");
    }
}

fn handle_message(state: &Rc<RefCell<State>>, msg: ToWorker) {
    match msg {
        ToWorker::LoadStart {
            size,
            name,
            backend,
        } => {
            let mut s = state.borrow_mut();
            if s.generating {
                s.stop.set(true);
            }
            // The previous model stays until the new file's header is accepted (`push_chunk`
            // frees it then, before any weights arrive): a file rejected at its header leaves the
            // working model in place.
            s.load_seq += 1;
            let seq = s.load_seq;
            s.loading = Some(Loading {
                name,
                loader: None,
                queue: Vec::new(),
                ended: false,
                header_ok: false,
                pref: backend,
            });
            drop(s);
            let state = state.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let opts = LoadOptions {
                    backend,
                    ..Default::default()
                };
                let loader = Loader::new(size, &opts).await;
                start_loader(&state, seq, loader);
            });
        }
        ToWorker::LoadCancel => {
            state.borrow_mut().loading = None;
        }
        ToWorker::LoadEnd => {
            let ready = {
                let mut s = state.borrow_mut();
                match s.loading.as_mut() {
                    None => return, // an earlier error already dropped it and was reported
                    Some(l) if l.loader.is_none() => {
                        l.ended = true; // finish once the queue is drained
                        false
                    }
                    Some(_) => true,
                }
            };
            if ready {
                finish_load(state);
            }
        }
        ToWorker::Generate {
            chat_id,
            messages,
            params,
        } => {
            let (model, stop) = {
                let mut s = state.borrow_mut();
                let Some(model) = s.model.clone() else {
                    drop(s);
                    post_error("No model is loaded yet.");
                    return;
                };
                if s.generating {
                    drop(s);
                    post_error("A reply is already being generated.");
                    return;
                }
                s.generating = true;
                s.stop.set(false);
                (model, s.stop.clone())
            };
            let state = state.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = reply(&state, &model, &chat_id, &messages, &params, &stop).await;
                state.borrow_mut().generating = false;
                match result {
                    Ok(done) => post(&done),
                    Err(e) => post_error(e),
                }
            });
        }
        ToWorker::Stop => state.borrow().stop.set(true),
        ToWorker::ForgetChat { chat_id } => {
            let mut s = state.borrow_mut();
            s.sessions.retain(|c| c.chat_id != chat_id);
            s.saved_kv.retain(|(c, _)| *c != chat_id);
        }
        ToWorker::KvRestore { chat_id } => state.borrow_mut().expect_kv = Some(chat_id),
        ToWorker::TestCrash => {
            // Hold the state, as a real failure mid-work would.
            let _held = state.borrow_mut();
            panic!("test crash requested by the page (?test-hooks)");
        }
        ToWorker::TestHang { secs } => {
            let until = js_sys::Date::now() + f64::from(secs) * 1e3;
            while js_sys::Date::now() < until {}
        }
    }
}

fn load_chunk(state: &Rc<RefCell<State>>, bytes: Vec<u8>) {
    let mut guard = state.borrow_mut();
    let s = &mut *guard;
    let Some(l) = s.loading.as_mut() else {
        return; // cancelled, or failed earlier (already reported)
    };
    if l.loader.is_none() {
        l.queue.push(bytes);
        return;
    }
    if let Err(e) = push_chunk(l, &mut s.model, &mut s.sessions, &bytes) {
        let name = l.name.clone();
        s.loading = None;
        drop(guard);
        post_load_error(&name, &e);
    }
}

/// Feed one chunk to the loader (tensors complete in it are uploaded) and report. Once the new
/// file's header is accepted, the previous model and its sessions are freed (`previous`), before
/// the weights arrive.
fn push_chunk(
    l: &mut Loading,
    previous: &mut Option<Rc<LoadedModel>>,
    sessions: &mut Vec<ChatSession>,
    bytes: &[u8],
) -> inference::Result<()> {
    let Some(loader) = l.loader.as_mut() else {
        return Ok(());
    };
    loader.push(bytes)?;
    if !l.header_ok && loader.preflight().is_some() {
        l.header_ok = true;
        *previous = None;
        sessions.clear();
    }
    let (done, total) = loader.progress();
    post(&FromWorker::Progress {
        done,
        total,
        header_ok: l.header_ok,
    });
    Ok(())
}

/// The backend is decided: keep the loader and drain the queue.
fn start_loader(state: &Rc<RefCell<State>>, seq: u64, loader: Loader) {
    let mut guard = state.borrow_mut();
    let s = &mut *guard;
    if s.load_seq != seq {
        return; // another load (or a cancel) came meanwhile
    }
    let Some(l) = s.loading.as_mut() else {
        return;
    };
    l.loader = Some(loader);
    for chunk in std::mem::take(&mut l.queue) {
        if let Err(e) = push_chunk(l, &mut s.model, &mut s.sessions, &chunk) {
            let name = l.name.clone();
            s.loading = None;
            drop(guard);
            post_load_error(&name, &e);
            return;
        }
    }
    let ended = l.ended;
    drop(guard);
    if ended {
        finish_load(state);
    }
}

/// Every byte is in: build the model (and the GPU model from the uploaded matrices).
fn finish_load(state: &Rc<RefCell<State>>) {
    let (l, seq) = {
        let mut s = state.borrow_mut();
        let Some(l) = s.loading.take() else { return };
        (l, s.load_seq)
    };
    let Some(loader) = l.loader else { return };
    let pref = l.pref;
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let gpu = loader.choice().is_gpu();
        let loaded = match loader.finish().await {
            Ok(m) => Rc::new(m),
            Err(e) if gpu && matches!(e, inference::Error::Gpu(_)) => {
                post_error(format!(
                    "WebGPU failed while preparing {}: {e}. Choose the CPU engine in Settings and \
                     load the model again.",
                    l.name
                ));
                return;
            }
            Err(e) => {
                post_load_error(&l.name, &e);
                return;
            }
        };
        let model = &loaded.model;
        let name = if model.name.is_empty() {
            l.name.clone()
        } else {
            model.name.clone()
        };
        let mut s = state.borrow_mut();
        if s.load_seq != seq {
            return; // another model was started meanwhile
        }
        s.model = Some(loaded.clone());
        s.sessions.clear();
        drop(s);
        post(&FromWorker::Loaded {
            name,
            arch: model.hp.arch.name().to_owned(),
            n_params: model.n_params,
            n_ctx: model.hp.n_ctx_train as u64,
            backend: in_app_words(loaded.choice.clone(), pref),
        });
    });
}

/// The engine's reason for running on the CPU, in the app's words (the setting is in Settings).
fn in_app_words(mut choice: BackendChoice, pref: BackendPref) -> BackendChoice {
    if pref == BackendPref::Cpu {
        choice.fallback = Some("the CPU engine was chosen in Settings".into());
    } else if let Some(why) = &choice.fallback {
        choice.fallback = Some(why.replace(
            "choose WebGPU explicitly to use it anyway",
            "choose \"WebGPU\" in Settings to use it anyway",
        ));
    }
    choice
}

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
        threads: 1,
        activations: inference::quant::Activations::F32,
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
struct PostTokens<'a> {
    stop: &'a Cell<bool>,
    channel: Option<web_sys::MessageChannel>,
    sent: u32,
}

impl TokenSink for PostTokens<'_> {
    async fn piece(&mut self, id: Option<u32>, text: &str) -> bool {
        self.sent += u32::from(id.is_some());
        post(&FromWorker::Token {
            id,
            piece: text.to_owned(),
        });
        yield_now(self.channel.as_ref()).await;
        !self.stop.get()
    }
}

/// Run one reply, posting `Token`s as they come and then the cache to save; returns `Done`.
async fn reply(
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
    let msgs: Vec<ChatMessage> = messages
        .iter()
        .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
        .collect();
    let prompt = if params.raw {
        let text = messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map_or("", |m| m.content.as_str());
        ChatPrompt::raw(model, text)
    } else {
        ChatPrompt::new(model, &msgs).map_err(|e| e.to_string())?
    };
    let gp = GenerateParams {
        max_tokens: params.max_tokens.max(1) as usize,
        sampler: SamplerParams {
            temperature: params.temperature,
            top_k: params.top_k as usize,
            top_p: params.top_p,
            seed: params.seed,
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
    let mut sink = PostTokens {
        stop,
        channel,
        sent: 0,
    };
    let g = match session.generate(&prompt.tokens, &gp, &mut sink).await {
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
        messages_out_of_view(
            model,
            &msgs,
            &prompt.tokens,
            session.keep(),
            session.dropped(),
        )
        .unwrap_or(0) as u32
    };
    let done = FromWorker::Done {
        tokens: g.tokens.len() as u32,
        prompt_tokens: g.prompt_tokens as u32,
        reused_tokens: g.reused as u32,
        evaluated_tokens: g.evaluated as u32,
        prefill_tok_s: g.prefill_tok_s(),
        // Engine time only: the yields to the event loop are not counted.
        decode_tok_s: g.decode_tok_s(),
        ttft_ms: g.prefill_s * 1e3,
        stop: g.stop.name().to_owned(),
        trimmed,
    };
    // The cache goes out before `Done`, so the next message can already use the session.
    if params.reuse {
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
