//! The UI side of the engine worker: start it, send it messages and model bytes, turn its replies
//! into state changes. Model bytes come from a download (fetch stream) or a dropped/picked file
//! (`File.slice()`), in 4 MiB chunks, with back-pressure so the worker's queue stays small.

use std::cell::{Cell, RefCell};

use js_sys::{ArrayBuffer, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{MessageEvent, Worker};

use chord_app::protocol::{FromWorker, ToWorker};

use crate::state::{AppState, Entry, ModelStatus, ReplyStats, Role};

/// Bytes per chunk sent to the worker.
pub const CHUNK: usize = 4 << 20;
/// Most bytes sent but not yet consumed by the worker before the sender waits.
const IN_FLIGHT: u64 = 32 << 20;

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
    /// Messages sent before the worker said `Ready`.
    static QUEUE: RefCell<Vec<(JsValue, bool)>> = const { RefCell::new(Vec::new()) };
    static READY: Cell<bool> = const { Cell::new(false) };
    /// Bumped by every new load and by Cancel: a transfer loop whose number is stale stops.
    static LOAD_SEQ: Cell<u64> = const { Cell::new(0) };
    /// Bytes of the current model the worker has consumed (from its `Progress`).
    static CONSUMED: Cell<u64> = const { Cell::new(0) };
    static ABORT: RefCell<Option<web_sys::AbortController>> = const { RefCell::new(None) };
}

fn js_err(e: JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    js_sys::Reflect::get(&e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

fn now_ms() -> f64 {
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
        let Some(text) = ev.data().as_string() else {
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

fn send_chunk(buf: ArrayBuffer) {
    post_value(buf.into(), true);
}

/// An error from the worker: it belongs to the load, the reply, or neither.
fn fail(state: AppState, message: String) {
    if state.status.with_untracked(|s| s.busy()) {
        LOAD_SEQ.with(|s| s.set(s.get() + 1));
        abort_fetch();
        state.status.set(ModelStatus::Failed(message));
    } else if state.generating.get_untracked() {
        state.messages.update(|m| {
            if let Some(last) = m.last_mut() {
                last.error = Some(message);
            }
        });
        state.generating.set(false);
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
        } => state.status.set(ModelStatus::Ready {
            name,
            arch,
            n_params,
            n_ctx,
        }),
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
            prefill_tok_s,
            decode_tok_s,
            stop,
        } => {
            state.messages.update(|m| {
                if let Some(last) = m.last_mut() {
                    last.stats = Some(ReplyStats {
                        tokens,
                        prompt_tokens,
                        prefill_tok_s,
                        decode_tok_s,
                        stop,
                    });
                }
            });
            state.generating.set(false);
        }
        FromWorker::Error { message } => fail(state, message),
    }
}

fn abort_fetch() {
    ABORT.with(|a| {
        if let Some(c) = a.borrow_mut().take() {
            c.abort();
        }
    });
}

/// Begin a new load; returns its sequence number.
fn begin_load(state: AppState, name: &str, size: u64, download: bool) -> u64 {
    let seq = LOAD_SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    CONSUMED.with(|c| c.set(0));
    state.messages.set(Vec::new());
    state.status.set(ModelStatus::Transferring {
        name: name.to_owned(),
        done: 0,
        total: size,
        bytes_per_s: 0.0,
        download,
    });
    send(&ToWorker::LoadStart {
        size,
        name: name.to_owned(),
    });
    seq
}

fn current(seq: u64) -> bool {
    LOAD_SEQ.with(|s| s.get()) == seq
}

/// Cancel the download or file transfer in progress.
pub fn cancel_load(state: AppState) {
    LOAD_SEQ.with(|s| s.set(s.get() + 1));
    abort_fetch();
    send(&ToWorker::LoadCancel);
    state.status.set(ModelStatus::Empty);
}

async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&global, &resolve, &JsValue::from(ms));
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Sends chunks and keeps the progress figures; shared by downloads and files.
struct Sender {
    state: AppState,
    seq: u64,
    name: String,
    total: u64,
    sent: u64,
    t0: f64,
    download: bool,
}

impl Sender {
    /// Send one chunk; `false` when the load was cancelled or failed meanwhile.
    async fn push(&mut self, bytes: &[u8]) -> bool {
        while self.sent.saturating_sub(CONSUMED.with(|c| c.get())) > IN_FLIGHT {
            if !current(self.seq) {
                return false;
            }
            sleep_ms(15).await;
        }
        if !current(self.seq) {
            return false;
        }
        let arr = Uint8Array::new_with_length(bytes.len() as u32);
        arr.copy_from(bytes);
        send_chunk(arr.buffer());
        self.sent += bytes.len() as u64;
        self.report();
        true
    }

    fn report(&self) {
        let secs = (now_ms() - self.t0) / 1000.0;
        self.state.status.set(ModelStatus::Transferring {
            name: self.name.clone(),
            done: self.sent,
            total: self.total,
            bytes_per_s: if secs > 0.0 {
                self.sent as f64 / secs
            } else {
                0.0
            },
            download: self.download,
        });
    }

    fn finish(self) {
        if current(self.seq) {
            send(&ToWorker::LoadEnd);
            self.state
                .status
                .set(ModelStatus::Preparing { name: self.name });
        }
    }
}

/// Stream a local file (dropped or picked) to the worker.
pub async fn load_file(state: AppState, file: web_sys::File) {
    let name = file.name();
    let size = file.size() as u64;
    let seq = begin_load(state, &name, size, false);
    let mut sender = Sender {
        state,
        seq,
        name,
        total: size,
        sent: 0,
        t0: now_ms(),
        download: false,
    };
    let mut off = 0u64;
    while off < size {
        let end = (off + CHUNK as u64).min(size);
        let bytes = match read_slice(&file, off, end).await {
            Ok(b) => b,
            Err(e) => {
                if current(seq) {
                    fail(state, format!("Cannot read {}: {e}", sender.name));
                }
                return;
            }
        };
        if !sender.push(&bytes).await {
            return;
        }
        off = end;
    }
    sender.finish();
}

async fn read_slice(file: &web_sys::File, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let blob = file
        .slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(js_err)?;
    let buf = JsFuture::from(blob.array_buffer()).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buf).to_vec())
}

/// Download a model with fetch (streamed) and hand it to the worker chunk by chunk.
pub async fn download(state: AppState, name: String, url: String) {
    if let Err(e) = try_download(state, &name, &url).await {
        fail(state, e);
    }
}

async fn try_download(state: AppState, name: &str, url: &str) -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    abort_fetch();
    let ctrl = web_sys::AbortController::new().map_err(js_err)?;
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(&ctrl.signal()));
    ABORT.with(|a| *a.borrow_mut() = Some(ctrl));
    // Show progress right away (size unknown until the headers arrive).
    let seq = LOAD_SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    state.status.set(ModelStatus::Transferring {
        name: name.to_owned(),
        done: 0,
        total: 0,
        bytes_per_s: 0.0,
        download: true,
    });
    let resp = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| format!("Download of {name} failed: {}", js_err(e)))?;
    if !current(seq) {
        return Ok(());
    }
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "fetch returned no Response")?;
    if !resp.ok() {
        return Err(format!(
            "Download of {name} failed: HTTP {} {}",
            resp.status(),
            resp.status_text()
        ));
    }
    let total = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("The server did not send the size of {name} (Content-Length)"))?;
    let body = resp.body().ok_or("The response has no body")?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let seq = begin_load(state, name, total, true);
    let mut sender = Sender {
        state,
        seq,
        name: name.to_owned(),
        total,
        sent: 0,
        t0: now_ms(),
        download: true,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut received = 0u64;
    loop {
        let result = match JsFuture::from(reader.read()).await {
            Ok(r) => r,
            Err(e) => {
                if !current(seq) {
                    return Ok(()); // cancelled: the abort rejects the read
                }
                return Err(format!("Download of {name} failed: {}", js_err(e)));
            }
        };
        if !current(seq) {
            let _ = reader.cancel();
            return Ok(());
        }
        let done = js_sys::Reflect::get(&result, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = js_sys::Reflect::get(&result, &JsValue::from_str("value"))
            .map_err(js_err)?
            .dyn_into::<Uint8Array>()
            .map_err(|_| "The download stream gave something other than bytes")?;
        let n = value.length() as usize;
        received += n as u64;
        if received > total {
            return Err(format!(
                "Download of {name} is larger than its announced {total} bytes"
            ));
        }
        let at = buf.len();
        buf.resize(at + n, 0);
        value.copy_to(&mut buf[at..]);
        if buf.len() >= CHUNK {
            if !sender.push(&buf).await {
                return Ok(());
            }
            buf.clear();
        }
    }
    if !buf.is_empty() && !sender.push(&buf).await {
        return Ok(());
    }
    if received != total {
        return Err(format!(
            "Download of {name} ended early: {received} of {total} bytes"
        ));
    }
    ABORT.with(|a| a.borrow_mut().take());
    sender.finish();
    Ok(())
}

/// Send the conversation (plus an empty assistant entry that the tokens will fill) for a reply.
pub fn generate(state: AppState, user_text: String) {
    let settings = state.settings.get_untracked();
    state.messages.update(|m| {
        m.push(Entry::new(Role::User, user_text));
    });
    let mut turns = Vec::new();
    if !settings.raw && !settings.system_prompt.trim().is_empty() {
        turns.push(chord_app::protocol::ChatTurn {
            role: "system".into(),
            content: settings.system_prompt.clone(),
        });
    }
    state.messages.with_untracked(|m| {
        for e in m.iter().filter(|e| e.error.is_none()) {
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
    send(&ToWorker::Generate {
        messages: turns,
        params: settings.gen_params(seed),
    });
}

pub fn stop() {
    send(&ToWorker::Stop);
}
