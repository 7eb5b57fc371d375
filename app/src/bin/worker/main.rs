//! The engine's dedicated Web Worker: receives the model bytes and chat requests from the UI,
//! runs the model, streams tokens back (see `chord_app::protocol`). The UI thread never runs the
//! model. Generation yields to this worker's event loop after every token, so `Stop` (and any
//! other message) is handled mid-reply.
//!
//! Loading goes through the engine's `Loader`: at `LoadStart` it decides between WebGPU and the
//! CPU engine (the user's choice; *Automatic* skips software adapters) and says why; on WebGPU
//! each weight matrix is uploaded, still quantized, piece by piece as its bytes arrive, and never
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
//!
//! Threads: the same source is also built with wasm threads (`scripts/build-worker-mt.sh`:
//! `target_feature = "atomics"`, shared memory, `dist/worker_mt*`). There `ToWorker::Threads`
//! starts the CPU engine's pool: `threads - 1` nested Web Workers (`worker_mt_pool.js`, named
//! `chord-pool`) that instantiate this same module on this same memory and run one pool worker
//! each ([`pool_worker_entry`]). In such a nested worker `main` does nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

mod reply;

use std::sync::Arc;

use chord_app::protocol::{FromWorker, ToWorker, HEARTBEAT_MS};
use inference::backend::{BackendChoice, BackendPref, GpuOptions};
use inference::engine::Session;
use inference::grammar::TokenTable;
use inference::loader::{LoadOptions, LoadedModel, Loader};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use reply::reply;

/// Sessions kept for other conversations while their KV caches fit this budget (the current one
/// always stays).
pub(crate) const SESSION_BUDGET_BYTES: u64 = 512 << 20;
pub(crate) const MAX_SESSIONS: usize = 4;

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
pub(crate) struct ChatSession {
    pub(crate) chat_id: String,
    pub(crate) session: Session,
}

#[derive(Default)]
pub(crate) struct State {
    /// The loaded model's vocabulary as the grammar matcher needs it (built on the first
    /// structured reply, dropped with the model).
    pub(crate) token_table: Option<Arc<TokenTable>>,
    pub(crate) loading: Option<Loading>,
    pub(crate) model: Option<Rc<LoadedModel>>,
    /// Most recently used last.
    pub(crate) sessions: Vec<ChatSession>,
    pub(crate) generating: bool,
    pub(crate) stop: Rc<Cell<bool>>,
    /// Bumped by every load: a GPU upload that finishes after a newer load started is dropped.
    pub(crate) load_seq: u64,
    /// A message to ourselves: how the worker yields to its event loop between tokens.
    pub(crate) yield_channel: Option<web_sys::MessageChannel>,
    /// `KvRestore` came: the next binary message is this conversation's saved cache.
    pub(crate) expect_kv: Option<String>,
    /// Saved caches received, restored when their conversation's next reply starts.
    pub(crate) saved_kv: Vec<(String, Vec<u8>)>,
}

/// Snapshots larger than this are not sent for saving.
pub(crate) const MAX_SNAPSHOT_BYTES: usize = 256 << 20;

pub(crate) fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

pub(crate) fn post(msg: &FromWorker) {
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

/// Threads the CPU engine's sessions ask for (`ToWorker::Threads`; one until told).
pub(crate) fn cpu_threads() -> usize {
    CPU_THREADS.with(|t| t.get())
}

thread_local! {
    static CPU_THREADS: Cell<usize> = const { Cell::new(1) };
}

/// The most threads the page may ask for.
const MAX_THREADS: u32 = 16;

/// `ToWorker::Threads`: start the pool now (nested workers take a moment to start; a model
/// loads meanwhile) and say how many threads run.
fn set_threads(threads: u32) {
    let threads = threads.clamp(1, MAX_THREADS) as usize;
    CPU_THREADS.with(|t| t.set(threads));
    #[cfg(target_feature = "atomics")]
    let running = inference::backend::pool::Pool::shared(threads).threads();
    #[cfg(not(target_feature = "atomics"))]
    let running = 1;
    post(&FromWorker::Threads {
        threads: running as u32,
    });
}

/// The threaded build: a pool worker is a nested Web Worker (`worker_mt_pool.js`) given this
/// module, this memory and the closure to run; false if the browser refuses to start one.
#[cfg(target_feature = "atomics")]
fn spawn_pool_worker(work: Box<dyn FnOnce() + Send>) -> bool {
    let start = || -> Result<(), JsValue> {
        let ctor = js_sys::Reflect::get(&js_sys::global(), &"Worker".into())?;
        let opts = js_sys::Object::new();
        js_sys::Reflect::set(&opts, &"name".into(), &POOL_WORKER_NAME.into())?;
        let args = js_sys::Array::of2(&"./worker_mt_pool.js".into(), &opts);
        let worker: web_sys::Worker =
            js_sys::Reflect::construct(ctor.unchecked_ref::<js_sys::Function>(), &args)?
                .unchecked_into();
        let ptr = Box::into_raw(Box::new(work));
        let msg = js_sys::Array::of3(
            &wasm_bindgen::module(),
            &wasm_bindgen::memory(),
            &JsValue::from(ptr as usize as u32),
        );
        if let Err(e) = worker.post_message(&msg) {
            // SAFETY: `ptr` came from `Box::into_raw` just above and was not sent anywhere.
            drop(unsafe { Box::from_raw(ptr) });
            worker.terminate();
            return Err(e);
        }
        Ok(())
    };
    match start() {
        Ok(()) => true,
        Err(e) => {
            web_sys::console::warn_2(&"cannot start a CPU pool worker:".into(), &e);
            false
        }
    }
}

/// The name of the nested pool workers (their `main` does nothing).
#[cfg(target_feature = "atomics")]
const POOL_WORKER_NAME: &str = "chord-pool";

/// Entry of a nested pool worker (`worker_mt_pool.js` calls it once the module is instantiated
/// on the shared memory): runs the pool worker loop until the pool is dropped.
#[cfg(target_feature = "atomics")]
#[wasm_bindgen]
pub fn pool_worker_entry(ptr: u32) {
    // SAFETY: `ptr` is the `Box::into_raw` of `spawn_pool_worker`, posted to exactly one nested
    // worker, which calls this once; the memory is shared, so the box is valid here.
    let work = unsafe { Box::from_raw(ptr as usize as *mut Box<dyn FnOnce() + Send>) };
    work();
}

/// This is a nested pool worker of the threaded build.
fn is_pool_worker() -> bool {
    #[cfg(target_feature = "atomics")]
    {
        js_sys::Reflect::get(&js_sys::global(), &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .is_some_and(|n| n == POOL_WORKER_NAME)
    }
    #[cfg(not(target_feature = "atomics"))]
    false
}

fn main() {
    if is_pool_worker() {
        return; // `pool_worker_entry` is its work; the engine worker does the rest
    }
    #[cfg(target_feature = "atomics")]
    inference::backend::pool::set_spawner(spawn_pool_worker);
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
            parts,
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
                    // an f16 KV cache where the GPU has shader-f16 (half the memory and reads)
                    gpu: GpuOptions {
                        f16_kv: true,
                        ..Default::default()
                    },
                };
                let parts = if parts.is_empty() { vec![size] } else { parts };
                let loader = Loader::new_split(&parts, &opts).await;
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
        ToWorker::Tokenize { text, special } => {
            let model = state.borrow().model.clone();
            match model {
                Some(m) => post(&FromWorker::Tokens {
                    ids: m.model.tokenizer.encode_with(&text, special, special),
                }),
                None => post_error("No model is loaded yet."),
            }
        }
        ToWorker::Detokenize { ids } => {
            let model = state.borrow().model.clone();
            match model {
                Some(m) => {
                    let n_vocab = m.model.tokenizer.vocab_size() as u32;
                    match ids.iter().find(|&&id| id >= n_vocab) {
                        Some(bad) => post_error(format!(
                            "token id {bad} is out of range: the vocabulary has {n_vocab} tokens"
                        )),
                        None => post(&FromWorker::Text {
                            text: m.model.tokenizer.decode(&ids),
                        }),
                    }
                }
                None => post_error("No model is loaded yet."),
            }
        }
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
        ToWorker::Threads { threads } => set_threads(threads),
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
        s.token_table = None;
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
