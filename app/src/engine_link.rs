//! The UI side of the engine worker: start it, send it messages and model bytes, turn its replies
//! into state changes. Model bytes come from a download (fetch stream) or a dropped/picked file
//! (`File.slice()`), in 4 MiB chunks, with back-pressure so the worker's queue stays small.
//!
//! The worker can die or hang (a panic traps its wasm; memory runs out; an endless loop). It is
//! replaced by a fresh one when it says `Panic`, fires `error` or `messageerror`, or stays silent
//! (no `Heartbeat`) for `HANG_TIMEOUT_MS` while it has work; after `SILENT_HINT_MS` the page
//! already offers a Restart button. A restart keeps the conversation and every stored byte, says
//! what happened in the chat area, and loads the model again from where it came from (the cache,
//! the resumed download, the same file).
//!
//! Threads: on a cross-origin isolated page (SharedArrayBuffer) with more than one core, the
//! threaded build of the worker (`worker_mt_loader.js`, made by `scripts/build-worker-mt.sh`) is
//! started and told how many threads to use (`ToWorker::Threads`); if it is not there or fails
//! before it says `Ready`, the default single-threaded worker takes over for the session.
//! [`cpu_threads`] says what runs, and why only one thread, for the backend badge.

use std::cell::{Cell, RefCell};

use js_sys::ArrayBuffer;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, Worker};

use chord_app::explain::{self, Explained};
use chord_app::protocol::{FromWorker, ToWorker, HANG_TIMEOUT_MS, SILENT_HINT_MS};

use crate::chat_store;
use crate::loads;
use crate::state::{AppState, Entry, ModelStatus, ReplyStats, Role};

/// Restarts in a row (no load or reply finished in between) after which the model is no longer
/// loaded again by itself: a model that crashes the engine every time must not loop.
const MAX_AUTO_RELOADS: u32 = 2;

thread_local! {
    /// The engine worker now (replaced when it is restarted).
    static LINK: RefCell<Option<Link>> = const { RefCell::new(None) };
    /// Numbers the workers, so events of a replaced one are ignored.
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    /// When the worker last said anything (ms since the epoch).
    static LAST_HEARD: Cell<f64> = const { Cell::new(0.0) };
    /// Restarts since a load or a reply last finished.
    static CRASHES: Cell<u32> = const { Cell::new(0) };
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
    /// The threaded worker failed to start once: the single-threaded one is used from then on.
    static MT_FAILED: Cell<bool> = const { Cell::new(false) };
    static CPU_THREADS: ArcRwSignal<CpuThreads> = ArcRwSignal::new(CpuThreads::Starting);
}

/// Most threads used without a setting (more rarely helps a memory-bound decode).
const AUTO_MAX_THREADS: u32 = 8;

/// How many threads the CPU engine runs, for the backend badge.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuThreads {
    /// The threaded worker is starting its pool.
    Starting,
    /// `n` threads (n > 1).
    Running(u32),
    /// One thread, and why.
    One(&'static str),
}

/// What the CPU engine runs on (reactive).
pub fn cpu_threads() -> ArcRwSignal<CpuThreads> {
    CPU_THREADS.with(|t| t.clone())
}

fn set_cpu_threads(t: CpuThreads) {
    CPU_THREADS.with(|s| {
        if s.get_untracked() != t {
            s.set(t);
        }
    });
}

/// The page can share memory with workers (COOP + COEP, or the service worker's headers).
fn cross_origin_isolated() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"crossOriginIsolated".into())
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Service workers run here but none controls this page yet (a first visit): the next load is
/// served by `sw.js`, which adds the isolation headers.
fn awaits_service_worker() -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let sw = js_sys::Reflect::get(&window.navigator(), &"serviceWorker".into())
        .unwrap_or(JsValue::UNDEFINED);
    !sw.is_undefined() && js_sys::Reflect::get(&sw, &"controller".into()).is_ok_and(|c| c.is_null())
}

/// Threads to ask for: the setting (0 = automatic: the cores, at most `AUTO_MAX_THREADS`), or
/// one, with the reason, where the threaded engine cannot run.
fn wanted_threads(state: AppState) -> Result<u32, &'static str> {
    let cores = web_sys::window()
        .map(|w| w.navigator().hardware_concurrency())
        .unwrap_or(1.0) as u32;
    let setting = state.settings.with_untracked(|s| s.threads);
    if !cross_origin_isolated() {
        return Err(if awaits_service_worker() {
            "one thread: the page is not cross-origin isolated yet; after a reload the app's \
             service worker makes it so, and the engine can use more threads"
        } else {
            "one thread: the page is not cross-origin isolated (its server does not send \
             COOP/COEP headers), so the engine cannot share memory with other threads"
        });
    }
    if setting == 1 {
        return Err("one thread, as chosen in Settings");
    }
    if cores <= 1 && setting == 0 {
        return Err("one thread: the browser reports one CPU core");
    }
    if MT_FAILED.with(|f| f.get()) {
        return Err(
            "one thread: the multi-threaded engine could not be started (it is not in \
                    this build, or the browser refused it)",
        );
    }
    Ok(match setting {
        0 => cores.min(AUTO_MAX_THREADS),
        n => n,
    })
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

/// One engine worker with its event handlers; they go together.
struct Link {
    id: u64,
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
    _on_message_error: Closure<dyn FnMut(MessageEvent)>,
}

impl Link {
    /// Stop the worker and stop listening to it.
    fn terminate(&self) {
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
        self.worker.set_onmessageerror(None);
        self.worker.terminate();
    }
}

fn current_id() -> Option<u64> {
    LINK.with(|l| l.borrow().as_ref().map(|l| l.id))
}

/// `?name` or `?name=value` in the page's URL.
fn url_flag(name: &str) -> Option<String> {
    let location = js_sys::Reflect::get(&js_sys::global(), &"location".into()).ok()?;
    let search = js_sys::Reflect::get(&location, &"search".into())
        .ok()?
        .as_string()?;
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => Some(v.to_owned()),
            None if kv == name => Some(String::new()),
            _ => None,
        })
}

/// Start the worker, route its messages into `state`, and watch that it stays alive.
pub fn start(state: AppState) {
    spawn_worker(state);
    let test_hooks = url_flag("test-hooks").is_some();
    // Tests shorten the time a silent engine gets (`?test-hooks&engine-timeout=SECONDS`).
    let timeout_ms = url_flag("engine-timeout")
        .filter(|_| test_hooks)
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(HANG_TIMEOUT_MS, |s| s * 1e3);
    let watchdog = Closure::<dyn FnMut()>::new(move || watch(state, timeout_ms));
    if let Some(window) = web_sys::window() {
        let _ = window.set_interval_with_callback_and_timeout_and_arguments_0(
            watchdog.as_ref().unchecked_ref(),
            1000,
        );
        if test_hooks {
            install_test_hooks(&window);
        }
    }
    watchdog.forget();
}

/// Start a worker (the first, or one replacing a dead one): the threaded build where it can run.
fn spawn_worker(state: AppState) {
    let threads = wanted_threads(state);
    let mt = threads.is_ok_and(|n| n > 1);
    set_cpu_threads(match threads {
        Ok(n) if n > 1 => CpuThreads::Starting,
        Ok(_) => CpuThreads::One("one thread, as chosen in Settings"),
        Err(why) => CpuThreads::One(why),
    });
    let url = if mt {
        "./worker_mt_loader.js"
    } else {
        "./worker_loader.js"
    };
    let worker = match Worker::new(url) {
        Ok(w) => w,
        Err(e) if mt => {
            web_sys::console::warn_1(
                &format!("the threaded engine did not start: {}", js_err(e)).into(),
            );
            MT_FAILED.with(|f| f.set(true));
            return spawn_worker(state);
        }
        Err(e) => {
            state.status.set(ModelStatus::Failed(Explained {
                sentence: "The engine could not be started in this browser.".into(),
                detail: format!("Cannot start the engine worker: {}", js_err(e)),
            }));
            return;
        }
    };
    let id = NEXT_ID.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    LAST_HEARD.with(|t| t.set(now_ms()));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if current_id() != Some(id) {
            return; // a replaced worker's last words
        }
        LAST_HEARD.with(|t| t.set(now_ms()));
        let data = ev.data();
        if let Ok(buf) = data.clone().dyn_into::<ArrayBuffer>() {
            save_kv(state, buf);
            return;
        }
        let Some(text) = data.as_string() else {
            return;
        };
        match serde_json::from_str::<FromWorker>(&text) {
            Ok(FromWorker::Panic { message }) => {
                web_sys::console::error_1(&format!("engine panic: {message}").into());
                restart(state, id, crash_note("it hit an internal error"));
            }
            Ok(msg) => on_worker_message(state, msg),
            Err(e) => web_sys::console::warn_1(&format!("bad worker message: {e}").into()),
        }
    });
    // A script that cannot be loaded (a 404: no threaded build in dist/) fires a plain `Event`,
    // not an `ErrorEvent`: read the message only where there is one.
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |ev: web_sys::Event| {
        ev.prevent_default();
        let message = ev.dyn_ref::<web_sys::ErrorEvent>().map_or_else(
            || "its script could not be loaded".to_owned(),
            |e| e.message(),
        );
        if mt && current_id() == Some(id) && !READY.with(|r| r.get()) {
            // The threaded build is missing (a build without it is a normal deployment: not a
            // warning) or cannot run here: the single-threaded worker takes over, with what was
            // queued for this one.
            web_sys::console::info_1(
                &format!("the threaded engine did not start: {message}").into(),
            );
            MT_FAILED.with(|f| f.set(true));
            fall_back(state, id);
            return;
        }
        web_sys::console::error_1(&format!("engine worker error: {message}").into());
        restart(state, id, crash_note("it crashed"));
    });
    let on_message_error = Closure::<dyn FnMut(MessageEvent)>::new(move |_ev: MessageEvent| {
        restart(state, id, crash_note("a message from it could not be read"));
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    worker.set_onmessageerror(Some(on_message_error.as_ref().unchecked_ref()));
    let link = Link {
        id,
        worker,
        _on_message: on_message,
        _on_error: on_error,
        _on_message_error: on_message_error,
    };
    LINK.with(|l| *l.borrow_mut() = Some(link));
    if let (true, Ok(threads)) = (mt, threads) {
        // Queued ahead of everything else until the worker says `Ready`.
        QUEUE.with(|q| {
            let msg = JsValue::from_str(&ToWorker::Threads { threads }.to_json());
            q.borrow_mut().insert(0, (msg, false));
        });
    }
}

/// The threaded worker `id` failed before it said `Ready`: start the single-threaded one in its
/// place; the messages queued for it (a load, a reply) go to the new one.
fn fall_back(state: AppState, id: u64) {
    let Some(old) = LINK.with(|l| l.borrow_mut().take_if(|l| l.id == id)) else {
        return;
    };
    old.terminate();
    leptos::task::spawn_local(async move { drop(old) });
    // The `Threads` message was for the threaded worker.
    QUEUE.with(|q| {
        q.borrow_mut().retain(|(m, _)| {
            !m.as_string().is_some_and(|t| {
                matches!(
                    serde_json::from_str::<ToWorker>(&t),
                    Ok(ToWorker::Threads { .. })
                )
            })
        })
    });
    spawn_worker(state);
}

fn crash_note(why: &str) -> String {
    format!(
        "The engine stopped unexpectedly ({why}) and was restarted; your conversation is intact."
    )
}

/// Once a second: how long the engine has been silent while it has work; too long → restart.
fn watch(state: AppState, timeout_ms: f64) {
    let busy = state.generating.get_untracked() || state.status.with_untracked(|s| s.busy());
    let silent = now_ms() - LAST_HEARD.with(|t| t.get());
    let hint = (busy && silent >= SILENT_HINT_MS.min(timeout_ms / 2.0))
        .then_some((silent / 1000.0) as u64);
    if state.engine_silent_s.get_untracked() != hint {
        state.engine_silent_s.set(hint);
    }
    if busy && silent >= timeout_ms {
        if let Some(id) = current_id() {
            let why = format!("it did not answer for {} s", (silent / 1000.0).round());
            restart(state, id, crash_note(&why));
        }
    }
}

/// The user asked for a fresh engine (it had stopped answering).
pub fn restart_now(state: AppState) {
    if let Some(id) = current_id() {
        restart(
            state,
            id,
            "The engine was restarted; your conversation is intact.".into(),
        );
    }
}

/// Replace worker `id` by a fresh one: what it was doing stops (a reply ends with `note`, a
/// load keeps its stored bytes), `note` goes to the chat area, and the model is loaded again.
fn restart(state: AppState, id: u64, note: String) {
    let Some(old) = LINK.with(|l| l.borrow_mut().take_if(|l| l.id == id)) else {
        return; // already replaced
    };
    old.terminate();
    // Its handlers may be running right now (this can be called from one): drop them later.
    leptos::task::spawn_local(async move { drop(old) });
    READY.with(|r| r.set(false));
    QUEUE.with(|q| q.borrow_mut().clear());
    CONSUMED.with(|c| c.set(0));
    KV_FOR.with(|k| k.borrow_mut().take());
    LIVE_CHATS.with(|l| l.borrow_mut().clear());
    let crashes = CRASHES.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let loading = state.status.with_untracked(|s| s.busy());
    let had_model = loading || state.status.with_untracked(|s| s.ready());
    if loading {
        loads::engine_lost(state);
    }
    if state.generating.get_untracked() {
        state.messages.update(|m| {
            if let Some(last) = m.last_mut() {
                last.error = Some(note.clone());
            }
        });
        state.generating.set(false);
        chat_store::save_current(state);
    }
    state.engine_silent_s.set(None);
    spawn_worker(state);
    if had_model {
        if crashes <= MAX_AUTO_RELOADS && loads::reload(state) {
            state.status.set(ModelStatus::Empty);
        } else {
            state.status.set(ModelStatus::Failed(Explained::plain(
                "The engine stopped again while using this model. Load it again to continue (or \
                 choose another model or engine).",
            )));
        }
    }
    state.engine_note.set(Some(note));
}

/// Test hooks for the browser tests (the page was opened with `?test-hooks`):
/// `chordTest.crashEngine()` makes the engine panic, `chordTest.hangEngine(secs)` blocks it.
fn install_test_hooks(window: &web_sys::Window) {
    let hooks = js_sys::Object::new();
    let crash = Closure::<dyn FnMut()>::new(|| send(&ToWorker::TestCrash));
    let hang = Closure::<dyn FnMut(u32)>::new(|secs: u32| send(&ToWorker::TestHang { secs }));
    let _ = js_sys::Reflect::set(&hooks, &"crashEngine".into(), crash.as_ref());
    let _ = js_sys::Reflect::set(&hooks, &"hangEngine".into(), hang.as_ref());
    let _ = js_sys::Reflect::set(window, &"chordTest".into(), &hooks);
    crash.forget();
    hang.forget();
}

fn raw_post(msg: &JsValue, transfer: bool) {
    LINK.with(|l| {
        if let Some(l) = l.borrow().as_ref() {
            let w = &l.worker;
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

/// An error from the worker: it belongs to the load, the reply, or neither. `rejected`: the
/// engine refused the model's bytes (its cached copy goes).
fn fail(state: AppState, message: String, rejected: bool) {
    if state.status.with_untracked(|s| s.busy()) {
        loads::failed(state, message, rejected);
    } else if state.generating.get_untracked() {
        state.messages.update(|m| {
            if let Some(last) = m.last_mut() {
                last.error = Some(message);
            }
        });
        state.generating.set(false);
        chat_store::save_current(state);
    } else {
        state
            .status
            .set(ModelStatus::Failed(explain::load_error(&message, None)));
    }
}

fn on_worker_message(state: AppState, msg: FromWorker) {
    match msg {
        FromWorker::Threads { threads } => set_cpu_threads(if threads > 1 {
            CpuThreads::Running(threads)
        } else {
            CpuThreads::One("one thread: the engine could not start more")
        }),
        FromWorker::Ready => {
            READY.with(|r| r.set(true));
            state.worker_ready.set(true);
            let queued = QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
            for (m, transfer) in queued {
                raw_post(&m, transfer);
            }
        }
        FromWorker::Progress {
            done, header_ok, ..
        } => {
            CONSUMED.with(|c| c.set(done));
            if header_ok {
                loads::header_accepted(state);
            }
        }
        FromWorker::Loaded {
            name: file_name,
            arch,
            n_params,
            n_ctx,
            backend,
        } => {
            state.backend.set(Some(backend));
            CRASHES.with(|c| c.set(0));
            LIVE_CHATS.with(|l| l.borrow_mut().clear());
            // The name the user picked it by (the catalog's, the file's), not the file's own
            // `general.name` (e.g. "Smollm2 135M 8k Lc100K Mix1 Ep2").
            let name = state.status.with_untracked(|s| match s {
                ModelStatus::Preparing { name } | ModelStatus::Transferring { name, .. } => {
                    Some(name.clone())
                }
                _ => None,
            });
            state.status.set(ModelStatus::Ready {
                name: name.unwrap_or(file_name),
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
            CRASHES.with(|c| c.set(0));
            chat_store::save_current(state);
        }
        FromWorker::Error { message } => fail(state, message, false),
        FromWorker::Rejected { message } => fail(state, message, true),
        FromWorker::KvSnapshot { chat_id } => KV_FOR.with(|k| *k.borrow_mut() = Some(chat_id)),
        // Handled where messages arrive (the time is noted there) and by `spawn_worker`.
        FromWorker::Heartbeat | FromWorker::Panic { .. } => {}
        // The app does not ask for these (the npm package does).
        FromWorker::Tokens { .. } | FromWorker::Text { .. } | FromWorker::ToolDelta { .. } => {}
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

/// Replace user message `index` by `text` and answer it again: what followed it goes (the
/// conversation branches there; the engine reuses its cache up to the edited message).
pub fn resend_edited(state: AppState, index: usize, text: String) {
    if state.generating.get_untracked() {
        return;
    }
    let ok = state.messages.try_update(|m| {
        if m.get(index).is_some_and(|e| e.role == Role::User) {
            m.truncate(index);
            m.push(Entry::new(Role::User, text));
            true
        } else {
            false
        }
    });
    if ok == Some(true) {
        chat_store::save_current(state);
        request_reply(state);
    }
}

/// Remove message `index` from the conversation (the next reply sees the conversation without it).
pub fn delete_message(state: AppState, index: usize) {
    if state.generating.get_untracked() {
        return;
    }
    state.messages.update(|m| {
        if index < m.len() {
            m.remove(index);
        }
    });
    state.editing.set(None);
    chat_store::save_current(state);
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
        turns.push(chord_app::protocol::ChatTurn::new(
            "system",
            settings.system_prompt.clone(),
        ));
    }
    state.messages.with_untracked(|m| {
        // A failed reply is left out (and so is an empty one).
        for e in m
            .iter()
            .filter(|e| e.error.is_none() && !(e.role == Role::Assistant && e.text.is_empty()))
        {
            turns.push(chord_app::protocol::ChatTurn::new(
                e.role.as_str(),
                e.text.clone(),
            ));
        }
    });
    state
        .messages
        .update(|m| m.push(Entry::new(Role::Assistant, "")));
    state.engine_note.set(None);
    state.generating.set(true);
    let seed = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let chat_id = state.chat_id.get_untracked();
    let generate = ToWorker::Generate {
        chat_id: chat_id.clone(),
        messages: turns,
        params: Box::new(settings.gen_params(seed)),
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
