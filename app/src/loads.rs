//! Getting a model's bytes to the engine worker: a download (resumable, written to the cache as
//! it arrives), the cache itself, or a dropped/picked file. All three go through one `Sender`,
//! in `CHUNK_BYTES` chunks, with back-pressure so the worker's queue stays small.
//!
//! ```text
//! download:  [cached chunks 0..k from IndexedDB] → fetch Range: bytes=k·CHUNK- → store + send
//! cache:     chunks 0..n from IndexedDB → send
//! file:      File.slice() → (store) + send
//! ```
//! A cache entry is marked complete only when every chunk is stored, the size (and sha256 where
//! known) checks out and the worker has built the model from it. Only the engine's verdict on the
//! bytes (`Rejected`) deletes an entry; a crashed or restarted engine keeps it, and the load
//! starts again from it (`reload`).

use std::cell::{Cell, RefCell};

use js_sys::Uint8Array;
use leptos::prelude::*;
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use chord_app::cache::{self, CachedModel, CHUNK_BYTES};
use chord_app::format;
use chord_app::protocol::ToWorker;

use chord_app::explain::{self, Explained};
use gloo_storage::{LocalStorage, Storage};

use crate::engine_link::{self, js_err, now_ms};
use crate::model_store;
use crate::state::{AppState, ModelOrigin, ModelStatus, Previous, Source};

/// `localStorage` key of the last model that loaded (its cache id), loaded again on the next
/// visit.
const LAST_MODEL_KEY: &str = "wasm-chord.last-model.v1";

/// Most bytes sent but not yet consumed by the worker before the sender waits.
const IN_FLIGHT: u64 = 32 << 20;
/// Reconnection attempts after a dropped download (waits 1, 2, 4, 8, 16 s).
const MAX_RETRIES: u32 = 5;

thread_local! {
    /// Bumped by every new load and by Cancel: a transfer loop whose number is stale stops.
    static LOAD_SEQ: Cell<u64> = const { Cell::new(0) };
    static ABORT: RefCell<Option<web_sys::AbortController>> = const { RefCell::new(None) };
    /// The cache entry being written by the load in progress (deleted if the worker rejects it).
    static WRITING: RefCell<Option<String>> = const { RefCell::new(None) };
    /// A fully stored and verified entry, marked complete once the worker says `Loaded`.
    static PENDING: RefCell<Option<CachedModel>> = const { RefCell::new(None) };
}

fn next_seq() -> u64 {
    LOAD_SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    })
}

fn current(seq: u64) -> bool {
    LOAD_SEQ.with(|s| s.get()) == seq
}

fn abort_fetch() {
    ABORT.with(|a| {
        if let Some(c) = a.borrow_mut().take() {
            c.abort();
        }
    });
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

// ----------------------------------------------------------------------------
// Hooks called by engine_link when the worker answers
// ----------------------------------------------------------------------------

/// A load starts: the model in use (if any) is noted, so a file the engine rejects gives it back.
fn begin(state: AppState) {
    state.load_error.set(None);
    // On a narrow screen the menu closes: the progress is shown above the chat.
    state.drawer_open.set(false);
    let status = state.status.get_untracked();
    if status.ready() {
        state.previous.set(Some(Previous {
            status,
            origin: state.origin.get_untracked(),
            backend: state.backend.get_untracked(),
        }));
    }
}

/// The worker accepted the new file's header and dropped the previous model.
pub fn header_accepted(state: AppState) {
    if state.previous.with_untracked(|p| p.is_some()) {
        state.previous.set(None);
    }
}

/// Put the previous model back on screen (it is still loaded in the worker); `false` if none.
fn restore_previous(state: AppState) -> bool {
    let Some(prev) = state.previous.try_update(|p| p.take()).flatten() else {
        return false;
    };
    state.origin.set(prev.origin);
    state.backend.set(prev.backend);
    state.status.set(prev.status);
    true
}

/// The cache id of a load's origin, to load it again on the next visit (a file not kept has none).
pub fn origin_cache_id(origin: &ModelOrigin) -> Option<String> {
    match origin {
        ModelOrigin::Url { url, .. } => Some(url.clone()),
        ModelOrigin::Cached(meta) => Some(meta.id.clone()),
        ModelOrigin::File { file, keep: true } => {
            Some(cache::file_id(&file.name(), file.size() as u64))
        }
        ModelOrigin::File { .. } => None,
    }
}

/// The worker built the model: a verified cache entry becomes complete, and the model is the one
/// to load again next time.
pub fn loaded(state: AppState) {
    state.previous.set(None);
    state.load_error.set(None);
    let last = state
        .origin
        .with_untracked(|o| o.as_ref().and_then(origin_cache_id));
    match last {
        Some(id) => {
            let _ = LocalStorage::set(LAST_MODEL_KEY, id);
        }
        None => LocalStorage::delete(LAST_MODEL_KEY),
    }
    WRITING.with(|w| w.borrow_mut().take());
    if let Some(mut meta) = PENDING.with(|p| p.borrow_mut().take()) {
        meta.complete = true;
        leptos::task::spawn_local(async move {
            if let Err(e) = model_store::put(&meta).await {
                state
                    .notice
                    .set(Some(format!("The model was not cached: {e}")));
            }
            refresh_cache(state).await;
        });
    }
}

/// The message of a failed load in plain words (the engine's own words as the detail).
fn explain(state: AppState, message: &str) -> Explained {
    let size = state.status.with_untracked(|s| match s {
        ModelStatus::Transferring { total, .. } if *total > 0 => Some(*total),
        _ => None,
    });
    if message.starts_with("Cannot load") {
        explain::load_error(message, size)
    } else {
        explain::transfer_error(message)
    }
}

/// The load failed. `discard`: the bytes themselves are bad (the engine rejected them, or a local
/// file could not be read), so the cache entry being written is useless and is deleted; any other
/// failure (network, GPU, a crashed engine) keeps it, to resume. A model that was loaded before
/// stays loaded (the worker keeps it until a new header is accepted): the error is shown beside it.
pub fn failed(state: AppState, message: String, discard: bool) {
    next_seq();
    abort_fetch();
    PENDING.with(|p| p.borrow_mut().take());
    let writing = WRITING.with(|w| w.borrow_mut().take());
    let why = explain(state, &message);
    if discard {
        state.origin.set(None);
        if state.previous.with_untracked(|p| p.is_none()) {
            LocalStorage::delete(LAST_MODEL_KEY);
        }
    }
    if let (true, Some(id)) = (discard, writing) {
        leptos::task::spawn_local(async move {
            let _ = model_store::delete(&id).await;
            refresh_cache(state).await;
        });
    }
    if restore_previous(state) {
        state.load_error.set(Some(why));
    } else {
        state.status.set(ModelStatus::Failed(why));
    }
}

/// The engine worker died during this load: stop sending, keep every stored byte (the load
/// starts again from them once the new worker is up, see `reload`).
pub fn engine_lost(state: AppState) {
    state.previous.set(None);
    next_seq();
    abort_fetch();
    WRITING.with(|w| w.borrow_mut().take());
    PENDING.with(|p| p.borrow_mut().take());
}

/// Load the model of the last load again (into a restarted engine): from the cache where it is
/// stored, resuming its download where it is partial, or from the same local file. `false` when
/// there is nothing to load.
pub fn reload(state: AppState) -> bool {
    let Some(origin) = state.origin.get_untracked() else {
        return false;
    };
    leptos::task::spawn_local(async move {
        match origin {
            ModelOrigin::Url { name, url, sha256 } => open_url(state, name, url, sha256).await,
            ModelOrigin::Cached(meta) => {
                if let Err(e) = load_cached(state, meta).await {
                    failed(state, e, false);
                }
            }
            ModelOrigin::File { file, keep } => load_file(state, file, keep).await,
        }
    });
    true
}

/// Cancel the download or file transfer in progress (a partial download stays cached).
pub fn cancel_load(state: AppState) {
    state.origin.set(None);
    next_seq();
    abort_fetch();
    WRITING.with(|w| w.borrow_mut().take());
    PENDING.with(|p| p.borrow_mut().take());
    engine_link::send(&ToWorker::LoadCancel);
    if !restore_previous(state) {
        state.status.set(ModelStatus::Empty);
    }
    leptos::task::spawn_local(refresh_cache(state));
}

/// Re-read the cache listing and the storage estimate into the state.
pub async fn refresh_cache(state: AppState) {
    match model_store::list().await {
        Ok(list) => state.cache.set(list),
        Err(e) => state.notice.set(Some(e)),
    }
    state.quota.set(model_store::estimate().await);
}

/// At start-up: ask for persistent storage, list the cache, and resume an unfinished download.
pub async fn init(state: AppState) {
    let _ = model_store::persist().await;
    refresh_cache(state).await;
    let resume = state.cache.with_untracked(|c| {
        c.iter()
            .find(|m| !m.complete && m.url.is_some() && m.chunks > 0)
            .cloned()
    });
    if let Some(meta) = resume {
        if state.status.with_untracked(|s| !s.busy()) {
            let url = meta.url.clone().unwrap_or_default();
            open_url(state, meta.name.clone(), url, meta.sha256.clone()).await;
        }
        return;
    }
    // The model of the last visit loads itself from the cache (online or offline).
    let last: Option<String> = LocalStorage::get(LAST_MODEL_KEY).ok();
    let entry = last.and_then(|id| {
        state
            .cache
            .with_untracked(|c| c.iter().find(|m| m.id == id && m.complete).cloned())
    });
    if let Some(meta) = entry {
        if state.status.with_untracked(|s| *s == ModelStatus::Empty) {
            if let Err(e) = load_cached(state, meta).await {
                failed(state, e, false);
            }
        }
    }
}

// ----------------------------------------------------------------------------
// The sender: one per load
// ----------------------------------------------------------------------------

struct Sender {
    state: AppState,
    seq: u64,
    name: String,
    source: Source,
    total: u64,
    /// Bytes sent to the worker (always a multiple of CHUNK_BYTES until the last chunk).
    sent: u64,
    /// Bytes that came from the network or the file (not from the cache) and when we started.
    fresh: u64,
    t0: f64,
    /// The entry being written; `None` when not caching (or storage failed).
    cache: Option<CachedModel>,
    /// Set only when the bytes are to be checked against a known sha256 (hashing a cached or
    /// dropped model for nothing would cost seconds on a large file).
    hasher: Option<Sha256>,
    /// Downloaded bytes not sent yet: less than a chunk (a split model's part may end inside a
    /// chunk; the next part continues it).
    carry: Vec<u8>,
}

impl Sender {
    /// `parts`: a split model's part sizes (empty: one file).
    fn new(
        state: AppState,
        seq: u64,
        name: &str,
        total: u64,
        parts: Vec<u64>,
        source: Source,
        cache: Option<CachedModel>,
    ) -> Self {
        engine_link::reset_consumed();
        engine_link::send(&ToWorker::LoadStart {
            size: total,
            name: name.to_owned(),
            backend: state.settings.with_untracked(|s| s.backend),
            parts,
        });
        WRITING.with(|w| {
            *w.borrow_mut() = cache.as_ref().filter(|c| !c.complete).map(|c| c.id.clone())
        });
        let s = Sender {
            state,
            seq,
            name: name.to_owned(),
            source,
            total,
            sent: 0,
            fresh: 0,
            t0: now_ms(),
            cache,
            hasher: None,
            carry: Vec::new(),
        };
        s.report();
        s
    }

    /// Send one chunk; `store` writes it to the cache first. `false` when the load was cancelled
    /// or failed meanwhile.
    async fn push(&mut self, bytes: &Uint8Array, store: bool) -> bool {
        while self.sent.saturating_sub(engine_link::consumed()) > IN_FLIGHT {
            if !current(self.seq) {
                return false;
            }
            sleep_ms(15).await;
        }
        if !current(self.seq) {
            return false;
        }
        if store {
            if let Some(meta) = self.cache.as_mut() {
                if let Err(e) = model_store::append_chunk(meta, bytes).await {
                    // Keep loading from the network; just stop caching.
                    let id = meta.id.clone();
                    self.cache = None;
                    WRITING.with(|w| w.borrow_mut().take());
                    let _ = model_store::delete(&id).await;
                    self.state.notice.set(Some(format!(
                        "{} will not be kept for next time: {e}",
                        self.name
                    )));
                }
                if !current(self.seq) {
                    return false;
                }
            }
            self.fresh += bytes.length() as u64;
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(bytes.to_vec());
        }
        // Copy into a buffer of its own: it is transferred (detached) to the worker.
        let own = Uint8Array::new(bytes);
        engine_link::send_chunk(own.buffer());
        self.sent += bytes.length() as u64;
        self.report();
        true
    }

    fn report(&self) {
        let secs = (now_ms() - self.t0) / 1000.0;
        self.state.status.set(ModelStatus::Transferring {
            name: self.name.clone(),
            done: self.sent,
            total: self.total,
            bytes_per_s: if secs > 0.05 {
                self.fresh as f64 / secs
            } else {
                0.0
            },
            source: self.source,
        });
    }

    /// All bytes sent: check them, then let the worker build the model.
    fn finish(mut self, sha256: Option<&str>) -> Result<(), String> {
        if !current(self.seq) {
            return Ok(());
        }
        if self.sent != self.total {
            return Err(format!(
                "{} ended early: {} of {} bytes",
                self.name, self.sent, self.total
            ));
        }
        if let (Some(want), Some(h)) = (sha256, self.hasher.take()) {
            let digest = format::hex(&h.finalize());
            if !digest.eq_ignore_ascii_case(want) {
                if let Some(meta) = self.cache.take() {
                    leptos::task::spawn_local(async move {
                        let _ = model_store::delete(&meta.id).await;
                    });
                }
                return Err(format!(
                    "{} is corrupt: its sha256 is {digest}, expected {want}",
                    self.name
                ));
            }
        }
        if let Some(meta) = self.cache.take().filter(|m| m.all_stored()) {
            PENDING.with(|p| *p.borrow_mut() = Some(meta));
        }
        ABORT.with(|a| a.borrow_mut().take());
        engine_link::send(&ToWorker::LoadEnd);
        self.state
            .status
            .set(ModelStatus::Preparing { name: self.name });
        Ok(())
    }

    /// Send chunks `0..count` of a cache entry.
    async fn replay(&mut self, id: &str, count: u64) -> Result<bool, String> {
        for i in 0..count {
            let bytes = model_store::read_chunk(id, i).await?;
            if !self.push(&bytes, false).await {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

// ----------------------------------------------------------------------------
// Entry points
// ----------------------------------------------------------------------------

/// Open a model by URL: from the cache when it is complete there, else download it (resuming a
/// partial download).
pub async fn open_url(state: AppState, name: String, url: String, sha256: Option<String>) {
    begin(state);
    state.notice.set(None);
    state.origin.set(Some(ModelOrigin::Url {
        name: name.clone(),
        url: url.clone(),
        sha256: sha256.clone(),
    }));
    let cached = match model_store::get(&url).await {
        Ok(c) => c,
        Err(e) => {
            state.notice.set(Some(format!(
                "The model cache is not available ({e}); downloading without caching."
            )));
            None
        }
    };
    // Before a byte of weights is downloaded: will it fit? (the header by Range requests). A
    // model that cannot run here, or a download the storage cannot hold, stops now; a check that
    // cannot be made (a server without Range, the network) does not stop the download.
    let downloading = !cached
        .as_ref()
        .is_some_and(|m| m.complete || m.all_stored());
    if downloading {
        state.status.set(ModelStatus::Transferring {
            name: name.clone(),
            done: 0,
            total: 0,
            bytes_per_s: 0.0,
            source: Source::Network,
        });
        let seq = LOAD_SEQ.with(|s| s.get());
        let check = crate::fit_check::check_url(state, &name, &url).await;
        if !current(seq) {
            return; // cancelled, or another load started meanwhile
        }
        match check {
            Ok(report) if !report.fit.runs() => {
                failed(state, report.sentence, false);
                return;
            }
            Ok(report) => state.notice.set(Some(report.sentence)),
            Err(e) => web_sys::console::info_1(&format!("fit check skipped: {e}").into()),
        }
    }
    let result = match cached {
        Some(meta) if meta.complete => replay_cached(state, meta).await,
        // Every byte is stored but the engine never accepted it (the page or the engine stopped
        // while it was being built): check and load it without asking the network again.
        Some(meta) if meta.all_stored() => load_stored(state, meta, sha256.as_deref()).await,
        partial => download(state, &name, &url, sha256.as_deref(), partial).await,
    };
    if let Err(e) = result {
        failed(state, e, false);
    }
    refresh_cache(state).await;
}

/// Load a complete cache entry.
pub async fn load_cached(state: AppState, meta: CachedModel) -> Result<(), String> {
    begin(state);
    state.origin.set(Some(match meta.url.clone() {
        Some(url) => ModelOrigin::Url {
            name: meta.name.clone(),
            url,
            sha256: meta.sha256.clone(),
        },
        None => ModelOrigin::Cached(meta.clone()),
    }));
    replay_cached(state, meta).await
}

async fn replay_cached(state: AppState, meta: CachedModel) -> Result<(), String> {
    let seq = next_seq();
    let mut sender = Sender::new(
        state,
        seq,
        &meta.name,
        meta.size,
        meta.parts.clone(),
        Source::Cache,
        None,
    );
    if !sender.replay(&meta.id, meta.total_chunks()).await? {
        return Ok(());
    }
    sender.finish(None)
}

/// An entry whose chunks are all stored but that was never marked complete: send it, checking its
/// sha256 where known, and mark it complete once the engine accepts it.
async fn load_stored(
    state: AppState,
    meta: CachedModel,
    sha256: Option<&str>,
) -> Result<(), String> {
    let seq = next_seq();
    let count = meta.total_chunks();
    let id = meta.id.clone();
    let (name, size, parts) = (meta.name.clone(), meta.size, meta.parts.clone());
    let mut sender = Sender::new(state, seq, &name, size, parts, Source::Cache, Some(meta));
    sender.hasher = sha256.map(|_| Sha256::new());
    if !sender.replay(&id, count).await? {
        return Ok(());
    }
    sender.finish(sha256)
}

/// Stream a dropped or picked file to the worker, keeping a copy in the cache if asked.
pub async fn load_file(state: AppState, file: web_sys::File, keep: bool) {
    begin(state);
    state.notice.set(None);
    state.origin.set(Some(ModelOrigin::File {
        file: file.clone(),
        keep,
    }));
    let name = file.name();
    let size = file.size() as u64;
    let seq = next_seq();
    let keep = keep && fits(state, &name, size).await;
    let cache = if keep {
        let meta = CachedModel::new(&cache::file_id(&name, size), &name, None, size, None);
        let _ = model_store::delete(&meta.id).await;
        match model_store::put(&meta).await {
            Ok(()) => Some(meta),
            Err(e) => {
                state
                    .notice
                    .set(Some(format!("{name} will not be kept for next time: {e}")));
                None
            }
        }
    } else {
        None
    };
    let mut sender = Sender::new(state, seq, &name, size, Vec::new(), Source::File, cache);
    let mut off = 0u64;
    while off < size {
        let end = (off + CHUNK_BYTES).min(size);
        let bytes = match read_slice(&file, off, end).await {
            Ok(b) => b,
            Err(e) => {
                if current(seq) {
                    failed(state, format!("Cannot read {name}: {e}"), true);
                }
                return;
            }
        };
        if !sender.push(&bytes, true).await {
            return;
        }
        off = end;
    }
    if let Err(e) = sender.finish(None) {
        failed(state, e, true);
    }
}

/// Whether a copy of `size` bytes fits the site's storage; says so when not (the file is still
/// loaded, just not kept).
async fn fits(state: AppState, name: &str, size: u64) -> bool {
    let Some((usage, quota)) = model_store::estimate().await else {
        return true;
    };
    match cache::storage_shortfall(name, size, usage, quota) {
        Some(why) => {
            state.notice.set(Some(format!("Not keeping a copy: {why}")));
            false
        }
        None => true,
    }
}

/// What re-reading a stored model found.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The sha256 matches the published one.
    Ok,
    /// It does not: the stored copy is damaged.
    Mismatch { got: String },
    /// Nothing to compare with (no published sha256 for this file).
    Unknown,
}

/// The published sha256 of a cache entry: its own, or the catalog's for its URL.
pub fn known_sha256(meta: &CachedModel) -> Option<String> {
    meta.sha256.clone().or_else(|| {
        let url = meta.url.as_deref()?;
        chord_app::catalog::CATALOG
            .iter()
            .find(|c| c.url == url)
            .and_then(|c| c.sha256.map(str::to_owned))
    })
}

/// Re-read every chunk of a complete entry and compare its sha256 with the published one;
/// `progress` gets the fraction done.
pub async fn verify(meta: &CachedModel, progress: impl Fn(f64)) -> Result<Verdict, String> {
    let Some(want) = known_sha256(meta) else {
        return Ok(Verdict::Unknown);
    };
    let mut h = Sha256::new();
    let n = meta.total_chunks();
    let mut size = 0u64;
    for i in 0..n {
        let bytes = model_store::read_chunk(&meta.id, i).await?;
        size += bytes.length() as u64;
        h.update(bytes.to_vec());
        progress((i + 1) as f64 / n.max(1) as f64);
    }
    let got = format::hex(&h.finalize());
    Ok(if size == meta.size && got.eq_ignore_ascii_case(&want) {
        Verdict::Ok
    } else {
        Verdict::Mismatch { got }
    })
}

async fn read_slice(file: &web_sys::File, start: u64, end: u64) -> Result<Uint8Array, String> {
    let blob = file
        .slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(js_err)?;
    let buf = JsFuture::from(blob.array_buffer()).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buf))
}

/// Why reading a download stopped.
enum Cut {
    /// Cancelled by the user or superseded by another load.
    Cancelled,
    /// The connection dropped: worth retrying from where we are.
    Network(String),
    /// Anything else: give up.
    Fatal(String),
}

/// The size of each part of a split model (a one-byte Range request each; a server that
/// ignores Range is answered by its Content-Length and the body is dropped).
async fn part_sizes(name: &str, urls: &[String]) -> Result<Vec<u64>, String> {
    let mut sizes = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        let fail = |e: String| {
            format!(
                "Download of {name} failed: part {} of {}: {e}",
                i + 1,
                urls.len()
            )
        };
        let resp = match fetch_range(url, "bytes=0-0").await {
            Ok(r) => r,
            Err(Cut::Network(e) | Cut::Fatal(e)) => return Err(fail(e)),
            Err(Cut::Cancelled) => return Err(String::new()),
        };
        let header = |k: &str| resp.headers().get(k).ok().flatten();
        let length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let plan =
            cache::plan_response(resp.status(), length, header("content-range").as_deref(), 0)
                .map_err(fail)?;
        abort_fetch();
        sizes.push(plan.total);
    }
    Ok(sizes)
}

/// Download `url`, resuming `partial` (chunks already in the cache) and retrying with HTTP Range
/// when the connection drops. The first part of a split model (`…-00001-of-0000N.gguf`) brings
/// its other parts: they are fetched one after the other and kept as one model.
async fn download(
    state: AppState,
    name: &str,
    url: &str,
    sha256: Option<&str>,
    mut partial: Option<CachedModel>,
) -> Result<(), String> {
    let seq = next_seq();
    state.status.set(ModelStatus::Transferring {
        name: name.to_owned(),
        done: 0,
        total: 0,
        bytes_per_s: 0.0,
        source: Source::Network,
    });
    let (urls, parts) = match cache::split_part_urls(url) {
        Some(urls) => match part_sizes(name, &urls).await {
            Ok(sizes) => (urls, sizes),
            Err(e) if e.is_empty() || !current(seq) => return Ok(()),
            Err(e) => return Err(e),
        },
        None => (vec![url.to_owned()], Vec::new()),
    };
    if !current(seq) {
        return Ok(());
    }
    // A published sha256 is the single file's: parts are not checked against it.
    let sha256 = sha256.filter(|_| parts.is_empty());
    let mut sender: Option<Sender> = None;
    let mut retries = 0u32;
    loop {
        let have = match &sender {
            Some(s) => s.sent + s.carry.len() as u64,
            None => partial.as_ref().map_or(0, |p| p.stored_bytes()),
        };
        // The part that holds byte `have`, and where it starts.
        let (k, in_part) = if parts.is_empty() {
            (0, have)
        } else {
            cache::part_at(&parts, have)
        };
        let part_start = have - in_part;
        let resp = match fetch(&urls[k], in_part).await {
            Ok(r) => r,
            Err(Cut::Network(e)) if retries < MAX_RETRIES && sender.is_some() => {
                retries += 1;
                if let Some(s) = sender.as_mut() {
                    s.carry.clear();
                }
                wait_to_retry(state, name, retries, &e).await;
                continue;
            }
            Err(Cut::Cancelled) => return Ok(()),
            Err(Cut::Network(e) | Cut::Fatal(e)) => {
                return Err(format!("Download of {name} failed: {e}"))
            }
        };
        if !current(seq) {
            return Ok(());
        }
        let header = |k: &str| resp.headers().get(k).ok().flatten();
        let length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let plan = cache::plan_response(
            resp.status(),
            length,
            header("content-range").as_deref(),
            in_part,
        )
        .map_err(|e| format!("Download of {name} failed: {e}"))?;
        // The whole model's size: the file's, or the parts' sum.
        let total = if parts.is_empty() {
            plan.total
        } else {
            if plan.total != parts[k] {
                return Err(format!(
                    "{name} changed on the server during the download; try again"
                ));
            }
            parts.iter().sum()
        };
        let sender = match &mut sender {
            Some(s) => {
                if total != s.total {
                    return Err(format!(
                        "{name} changed on the server during the download; try again"
                    ));
                }
                s
            }
            None => {
                // First answer: the size is known. A partial entry of another size is stale.
                if let Some(p) = partial.take() {
                    if p.size == total && p.parts == parts {
                        partial = Some(p);
                    } else {
                        let _ = model_store::delete(&p.id).await;
                        if have > 0 {
                            continue; // ask again from byte 0
                        }
                    }
                }
                let stored = partial.as_ref().map_or(0, |p| p.stored_bytes());
                if let Some((usage, quota)) = model_store::estimate().await {
                    if let Some(why) = cache::storage_shortfall(name, total - stored, usage, quota)
                    {
                        abort_fetch();
                        return Err(why);
                    }
                }
                let cache = match partial.take() {
                    Some(p) => Some(p),
                    None => {
                        let mut meta = CachedModel::new(url, name, Some(url), total, sha256);
                        meta.parts = parts.clone();
                        match model_store::put(&meta).await {
                            Ok(()) => Some(meta),
                            Err(e) => {
                                state.notice.set(Some(format!(
                                    "{name} will not be kept for next time: {e}"
                                )));
                                None
                            }
                        }
                    }
                };
                let stored = cache.as_ref().map_or(0, |c| c.chunks);
                let id = cache.as_ref().map(|c| c.id.clone()).unwrap_or_default();
                let s = sender.insert(Sender::new(
                    state,
                    seq,
                    name,
                    total,
                    parts.clone(),
                    Source::Network,
                    cache,
                ));
                s.hasher = sha256.map(|_| Sha256::new());
                if !s.replay(&id, stored).await? {
                    return Ok(());
                }
                if s.sent != have {
                    // The cache held fewer chunks than its entry said: ask from there.
                    continue;
                }
                s
            }
        };
        match stream_body(sender, resp, plan.skip, part_start + plan.total).await {
            Ok(()) if sender.sent == sender.total => break,
            Ok(()) => {} // the next part
            Err(Cut::Cancelled) => return Ok(()),
            Err(Cut::Network(e)) if retries < MAX_RETRIES => {
                retries += 1;
                sender.carry.clear();
                wait_to_retry(state, name, retries, &e).await;
            }
            Err(Cut::Network(e)) => {
                return Err(format!(
                    "Download of {name} stopped at {} ({e}). Press Load again to resume.",
                    format::bytes(sender.sent)
                ))
            }
            Err(Cut::Fatal(e)) => return Err(e),
        }
    }
    let Some(sender) = sender else {
        return Ok(());
    };
    sender.finish(sha256)
}

async fn wait_to_retry(state: AppState, name: &str, attempt: u32, why: &str) {
    let secs = 1 << (attempt - 1);
    state.notice.set(Some(format!(
        "Connection lost while downloading {name} ({why}); resuming in {secs} s (attempt {attempt} of {MAX_RETRIES})…"
    )));
    sleep_ms(secs * 1000).await;
}

/// GET `url` from byte `from` on.
async fn fetch(url: &str, from: u64) -> Result<web_sys::Response, Cut> {
    let range = (from > 0).then(|| format!("bytes={from}-"));
    fetch_range(url, range.as_deref().unwrap_or_default()).await
}

/// GET `url` with this `Range` header (none when empty).
async fn fetch_range(url: &str, range: &str) -> Result<web_sys::Response, Cut> {
    let window = web_sys::window().ok_or(Cut::Fatal("no window".into()))?;
    abort_fetch();
    let ctrl = web_sys::AbortController::new().map_err(|e| Cut::Fatal(js_err(e)))?;
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(&ctrl.signal()));
    // The cache is ours (IndexedDB): never let the HTTP cache serve or store model bytes.
    init.set_cache(web_sys::RequestCache::NoStore);
    if !range.is_empty() {
        let headers = web_sys::Headers::new().map_err(|e| Cut::Fatal(js_err(e)))?;
        headers
            .set("Range", range)
            .map_err(|e| Cut::Fatal(js_err(e)))?;
        init.set_headers(&headers);
    }
    ABORT.with(|a| *a.borrow_mut() = Some(ctrl));
    let seq = LOAD_SEQ.with(|s| s.get());
    match JsFuture::from(window.fetch_with_str_and_init(url, &init)).await {
        Ok(r) => r
            .dyn_into()
            .map_err(|_| Cut::Fatal("fetch returned no Response".into())),
        Err(_) if !current(seq) => Err(Cut::Cancelled),
        Err(e) => Err(Cut::Network(js_err(e))),
    }
}

/// Read a response body into whole chunks, skipping the first `skip` bytes; each chunk is
/// stored and sent. The body ends at byte `end` of the model (its size, or where this part of a
/// split model ends: a partial chunk is then carried over to the next part).
async fn stream_body(
    sender: &mut Sender,
    resp: web_sys::Response,
    skip: u64,
    end: u64,
) -> Result<(), Cut> {
    let body = resp
        .body()
        .ok_or(Cut::Fatal("the response has no body".into()))?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut skip = skip;
    let mut buf: Vec<u8> = std::mem::take(&mut sender.carry);
    buf.reserve(CHUNK_BYTES as usize);
    loop {
        let result = match JsFuture::from(reader.read()).await {
            Ok(r) => r,
            Err(_) if !current(sender.seq) => return Err(Cut::Cancelled),
            Err(e) => return Err(Cut::Network(js_err(e))),
        };
        if !current(sender.seq) {
            let _ = reader.cancel();
            return Err(Cut::Cancelled);
        }
        let done = js_sys::Reflect::get(&result, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let value: Uint8Array = js_sys::Reflect::get(&result, &JsValue::from_str("value"))
            .ok()
            .and_then(|v| v.dyn_into().ok())
            .ok_or(Cut::Fatal(
                "the download stream gave something other than bytes".into(),
            ))?;
        let mut bytes = value.to_vec();
        if skip > 0 {
            let n = skip.min(bytes.len() as u64) as usize;
            bytes.drain(..n);
            skip -= n as u64;
        }
        if sender.sent + (buf.len() + bytes.len()) as u64 > end {
            return Err(Cut::Fatal(format!(
                "{} is larger than its announced {} bytes",
                sender.name, sender.total
            )));
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let take = (CHUNK_BYTES as usize - buf.len()).min(rest.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buf.len() == CHUNK_BYTES as usize {
                if !sender.push(&Uint8Array::from(&buf[..]), true).await {
                    return Err(Cut::Cancelled);
                }
                buf.clear();
            }
        }
    }
    // Only the file's last chunk may be short: a cut connection drops its partial chunk, and the
    // retry asks again from the last whole one (cached chunks stay aligned).
    let reached = sender.sent + buf.len() as u64;
    if reached < end {
        return Err(Cut::Network(format!(
            "the connection closed after {} of {}",
            format::bytes(reached),
            format::bytes(sender.total)
        )));
    }
    if end == sender.total && !buf.is_empty() {
        if !sender.push(&Uint8Array::from(&buf[..]), true).await {
            return Err(Cut::Cancelled);
        }
    } else {
        sender.carry = buf;
    }
    Ok(())
}
