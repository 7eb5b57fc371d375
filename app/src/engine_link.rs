//! The UI side of the engine worker: start it, send it messages and model bytes, turn its replies
//! into state changes. Model bytes come from a download (fetch stream) or a dropped/picked file
//! (`File.slice()`), in 4 MiB chunks, with back-pressure so the worker's queue stays small.

use std::cell::{Cell, RefCell};

use js_sys::ArrayBuffer;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, Worker};

use chord_app::protocol::{FromWorker, ToWorker};

use crate::chat_store;
use crate::loads;
use crate::state::{AppState, Entry, ModelStatus, ReplyStats, Role};

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
    /// Messages sent before the worker said `Ready`.
    static QUEUE: RefCell<Vec<(JsValue, bool)>> = const { RefCell::new(Vec::new()) };
    static READY: Cell<bool> = const { Cell::new(false) };
    /// Bytes of the current model the worker has consumed (from its `Progress`).
    static CONSUMED: Cell<u64> = const { Cell::new(0) };
    /// `KvSnapshot` came: the next binary message is this conversation's cache, to save.
    static KV_FOR: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Conversations whose session the worker has (it was given the saved cache or made one)
    /// since the model was loaded.
    static LIVE_CHATS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn js_err(e: JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    js_sys::Reflect::get(&e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Start the worker and route its messages into `state`.
pub fn start(state: AppState) {
    let worker = match Worker::new("./worker_loader.js") {
        Ok(w) => w,
        Err(e) => {
            state.status.set(ModelStatus::Failed(format!(
                "Cannot start the engine worker: {}",
                js_err(e)
            )));
            return;
        }
    };
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let data = ev.data();
        if let Ok(buf) = data.clone().dyn_into::<ArrayBuffer>() {
            save_kv(state, buf);
            return;
        }
        let Some(text) = data.as_string() else {
            return;
        };
        match serde_json::from_str::<FromWorker>(&text) {
            Ok(msg) => on_worker_message(state, msg),
            Err(e) => web_sys::console::warn_1(&format!("bad worker message: {e}").into()),
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_error =
        Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |ev: web_sys::ErrorEvent| {
            let message = format!("The engine worker crashed: {}", ev.message());
            fail(state, message);
        });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    WORKER.with(|w| *w.borrow_mut() = Some(worker));
}

fn raw_post(msg: &JsValue, transfer: bool) {
    WORKER.with(|w| {
        if let Some(w) = w.borrow().as_ref() {
            let r = if transfer {
                w.post_message_with_transfer(msg, &js_sys::Array::of1(msg))
            } else {
                w.post_message(msg)
            };
            if let Err(e) = r {
                web_sys::console::error_1(&e);
            }
        }
    });
}

fn post_value(msg: JsValue, transfer: bool) {
    if READY.with(|r| r.get()) {
        raw_post(&msg, transfer);
    } else {
        QUEUE.with(|q| q.borrow_mut().push((msg, transfer)));
    }
}

/// Send a control message.
pub fn send(msg: &ToWorker) {
    post_value(JsValue::from_str(&msg.to_json()), false);
}

/// Send model bytes (transferred, not copied).
pub(crate) fn send_chunk(buf: ArrayBuffer) {
    post_value(buf.into(), true);
}

/// Bytes of the model in transfer that the worker has consumed.
pub(crate) fn consumed() -> u64 {
    CONSUMED.with(|c| c.get())
}

pub(crate) fn reset_consumed() {
    CONSUMED.with(|c| c.set(0));
}

/// Keep the conversation cache the worker sent (after its `KvSnapshot`) in IndexedDB.
fn save_kv(state: AppState, buf: ArrayBuffer) {
    let Some(chat_id) = KV_FOR.with(|k| k.borrow_mut().take()) else {
        return;
    };
    leptos::task::spawn_local(async move {
        if let Err(e) = crate::model_store::put_kv(&chat_id, &buf).await {
            state
                .notice
                .set(Some(format!("The conversation's cache was not saved: {e}")));
        }
    });
}

/// An error from the worker: it belongs to the load, the reply, or neither.
fn fail(state: AppState, message: String) {
    if state.status.with_untracked(|s| s.busy()) {
        loads::failed(state, message, true);
    } else if state.generating.get_untracked() {
        state.messages.update(|m| {
            if let Some(last) = m.last_mut() {
                last.error = Some(message);
            }
        });
        state.generating.set(false);
        chat_store::save_current(state);
    } else {
        state.status.set(ModelStatus::Failed(message));
    }
}

fn on_worker_message(state: AppState, msg: FromWorker) {
    match msg {
        FromWorker::Ready => {
            READY.with(|r| r.set(true));
            state.worker_ready.set(true);
            let queued = QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
            for (m, transfer) in queued {
                raw_post(&m, transfer);
            }
        }
        FromWorker::Progress { done, .. } => CONSUMED.with(|c| c.set(done)),
        FromWorker::Loaded {
            name,
            arch,
            n_params,
            n_ctx,
            backend,
        } => {
            state.backend.set(Some(backend));
            LIVE_CHATS.with(|l| l.borrow_mut().clear());
            state.status.set(ModelStatus::Ready {
                name,
                arch,
                n_params,
                n_ctx,
            });
            loads::loaded(state);
        }
        FromWorker::Backend { backend } => state.backend.set(Some(backend)),
        FromWorker::Token { id, piece } => state.messages.update(|m| {
            if let Some(last) = m.last_mut() {
                last.text.push_str(&piece);
                if let Some(id) = id {
                    last.ids.push(id);
                }
            }
        }),
        FromWorker::Done {
            tokens,
            prompt_tokens,
            evaluated_tokens,
            prefill_tok_s,
            decode_tok_s,
            ttft_ms,
            stop,
            trimmed,
            ..
        } => {
            let backend = state
                .backend
                .with_untracked(|b| b.as_ref().map(|b| b.kind.name().to_owned()))
                .unwrap_or_default();
            state.messages.update(|m| {
                if let Some(last) = m.last_mut() {
                    last.stats = Some(ReplyStats {
                        tokens,
                        prompt_tokens,
                        evaluated_tokens,
                        ttft_ms,
                        prefill_tok_s,
                        decode_tok_s,
                        stop,
                        trimmed,
                        backend,
                    });
                }
            });
            state.generating.set(false);
            chat_store::save_current(state);
        }
        FromWorker::Error { message } => fail(state, message),
        FromWorker::KvSnapshot { chat_id } => KV_FOR.with(|k| *k.borrow_mut() = Some(chat_id)),
    }
}

/// Add the user's message and ask for a reply.
pub fn generate(state: AppState, user_text: String) {
    state.messages.update(|m| {
        m.push(Entry::new(Role::User, user_text));
    });
    chat_store::save_current(state);
    request_reply(state);
}

/// Replace the last reply with a new one (a new seed when sampling).
pub fn regenerate(state: AppState) {
    if state.generating.get_untracked() {
        return;
    }
    state.messages.update(|m| {
        if m.last().is_some_and(|e| e.role == Role::Assistant) {
            m.pop();
        }
    });
    if state
        .messages
        .with_untracked(|m| m.last().is_some_and(|e| e.role == Role::User))
    {
        request_reply(state);
    }
}

/// Send the conversation (plus an empty assistant entry that the tokens will fill) for a reply.
fn request_reply(state: AppState) {
    let settings = state.settings.get_untracked();
    let mut turns = Vec::new();
    if !settings.raw && !settings.system_prompt.trim().is_empty() {
        turns.push(chord_app::protocol::ChatTurn {
            role: "system".into(),
            content: settings.system_prompt.clone(),
        });
    }
    state.messages.with_untracked(|m| {
        // A failed reply is left out (and so is an empty one).
        for e in m
            .iter()
            .filter(|e| e.error.is_none() && !(e.role == Role::Assistant && e.text.is_empty()))
        {
            turns.push(chord_app::protocol::ChatTurn {
                role: e.role.as_str().into(),
                content: e.text.clone(),
            });
        }
    });
    state
        .messages
        .update(|m| m.push(Entry::new(Role::Assistant, "")));
    state.generating.set(true);
    let seed = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let chat_id = state.chat_id.get_untracked();
    let generate = ToWorker::Generate {
        chat_id: chat_id.clone(),
        messages: turns,
        params: settings.gen_params(seed),
    };
    let live = LIVE_CHATS.with(|l| l.borrow().contains(&chat_id));
    if live {
        send(&generate);
        return;
    }
    // A conversation the worker has no session for (reopened after a reload, or from before the
    // model was loaded): its saved cache goes first, so the history is not recomputed.
    LIVE_CHATS.with(|l| l.borrow_mut().push(chat_id.clone()));
    leptos::task::spawn_local(async move {
        if let Ok(Some(buf)) = crate::model_store::get_kv(&chat_id).await {
            send(&ToWorker::KvRestore { chat_id });
            send_chunk(buf);
        }
        send(&generate);
    });
}

/// A conversation was deleted: the worker frees its session, the saved cache goes too.
pub fn forget_chat(chat_id: String) {
    LIVE_CHATS.with(|l| l.borrow_mut().retain(|c| *c != chat_id));
    send(&ToWorker::ForgetChat {
        chat_id: chat_id.clone(),
    });
    leptos::task::spawn_local(async move {
        let _ = crate::model_store::delete_kv(&chat_id).await;
    });
}

pub fn stop() {
    send(&ToWorker::Stop);
}
