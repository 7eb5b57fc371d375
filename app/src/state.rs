//! What the UI knows, as signals shared through context: the model's status, the conversation,
//! whether a reply is streaming, and the settings (persisted by an `Effect`).

use gloo_storage::Storage;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use chord_app::cache::CachedModel;
use chord_app::explain::Explained;
use chord_app::protocol::BackendInfo;
use chord_app::settings::{Settings, STORAGE_KEY};

/// Where the bytes of a model in transfer come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Network,
    Cache,
    File,
}

impl Source {
    /// The verb the progress line starts with.
    pub fn verb(self) -> &'static str {
        match self {
            Source::Network => "Downloading",
            Source::Cache => "Loading from browser storage",
            Source::File => "Reading",
        }
    }
}

/// Where the model in the engine (or on its way there) came from: how to load it again into a
/// restarted engine.
#[derive(Clone, Debug)]
pub enum ModelOrigin {
    /// A URL: the complete cache entry, or its download (resumed from what is stored).
    Url {
        name: String,
        url: String,
        sha256: Option<String>,
    },
    /// A complete cache entry with no URL (a kept local file).
    Cached(CachedModel),
    /// A dropped or picked file (the page keeps its handle, so it can be read again).
    File { file: web_sys::File, keep: bool },
}

/// Where the model is in its life: picked, downloading/streaming to the worker, ready, failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelStatus {
    Empty,
    /// Bytes are going to the worker, from a download, the cache or a local file.
    Transferring {
        name: String,
        done: u64,
        total: u64,
        /// Rate of new bytes (network or file), for the MB/s figure and the ETA.
        bytes_per_s: f64,
        source: Source,
    },
    /// Every byte sent; the worker is building the model.
    Preparing {
        name: String,
    },
    Ready {
        /// The catalog's name for the model, else its file name.
        name: String,
        arch: String,
        n_params: u64,
        /// The context the model was trained for (the one in use is the smaller of this and the
        /// Context size setting: [`AppState::n_ctx_in_use`]).
        n_ctx: u64,
    },
    /// No model is loaded and the last load failed.
    Failed(Explained),
}

impl ModelStatus {
    pub fn busy(&self) -> bool {
        matches!(self, Self::Transferring { .. } | Self::Preparing { .. })
    }
    pub fn ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }
    /// Short machine-readable state for `data-state` (tests, CSS).
    pub fn key(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Transferring { .. } => "transferring",
            Self::Preparing { .. } => "preparing",
            Self::Ready { .. } => "ready",
            Self::Failed(_) => "failed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

pub use chord_app::reply::ReplyStats;

/// One message in the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub role: Role,
    pub text: String,
    /// Generated token ids (assistant replies).
    pub ids: Vec<u32>,
    pub stats: Option<ReplyStats>,
    pub error: Option<String>,
}

impl Entry {
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Entry {
            role,
            text: text.into(),
            ids: Vec::new(),
            stats: None,
            error: None,
        }
    }
}

#[derive(Clone, Copy)]
pub struct AppState {
    pub status: RwSignal<ModelStatus>,
    pub messages: RwSignal<Vec<Entry>>,
    pub generating: RwSignal<bool>,
    pub settings: RwSignal<Settings>,
    pub worker_ready: RwSignal<bool>,
    /// A non-fatal message about the model (not cached, connection lost and resuming, …).
    pub notice: RwSignal<Option<String>>,
    /// The models in the browser's cache, newest first.
    pub cache: RwSignal<Vec<CachedModel>>,
    /// `(usage, quota)` bytes from `navigator.storage.estimate()`.
    pub quota: RwSignal<Option<(f64, f64)>>,
    /// The engine the loaded model runs on (`None` before the first load).
    pub backend: RwSignal<Option<BackendInfo>>,
    /// The conversation on screen (its IndexedDB key) and the saved ones, newest first.
    pub chat_id: RwSignal<String>,
    pub chats: RwSignal<Vec<ChatRecord>>,
    /// The model of the last load, to load again after the engine was restarted.
    pub origin: RwSignal<Option<ModelOrigin>, LocalStorage>,
    /// What happened to the engine (it stopped and was restarted), shown in the chat area.
    pub engine_note: RwSignal<Option<String>>,
    /// Seconds the engine has been silent while it has work, once that is long enough to say so
    /// (with a Restart button); `None` while it answers.
    pub engine_silent_s: RwSignal<Option<u64>>,
    /// A load failed while another model stayed loaded (that model is still in use).
    pub load_error: RwSignal<Option<Explained>>,
    /// The model that was ready when the load in progress started, with its origin and engine:
    /// the worker keeps it until the new file's header is accepted, so a rejected file gives it
    /// back (`loads::failed`).
    pub previous: RwSignal<Option<Previous>, LocalStorage>,
    /// What this browser's WebGPU adapter is, once asked (the badge before a load).
    pub adapter: RwSignal<Option<crate::platform::AdapterProbe>>,
    /// The sidebar drawer is open (narrow screens).
    pub drawer_open: RwSignal<bool>,
    /// The user message being edited (its index): sending replaces it and drops what followed.
    pub editing: RwSignal<Option<usize>>,
    /// The composer's text (shared so Edit and ↑ can fill it).
    pub draft: RwSignal<String>,
    /// The open chat's own title, when the user renamed it.
    pub chat_title: RwSignal<Option<String>>,
}

/// The model that stays loaded while another one is on its way.
#[derive(Clone, Debug)]
pub struct Previous {
    pub status: ModelStatus,
    pub origin: Option<ModelOrigin>,
    pub backend: Option<BackendInfo>,
}

/// A saved conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRecord {
    pub id: String,
    pub title: String,
    /// The user renamed it (its title no longer follows the first message).
    #[serde(default)]
    pub renamed: bool,
    pub updated_ms: f64,
    pub messages: Vec<Entry>,
}

/// A fresh conversation key ("chat-<ms>-<random>").
pub fn new_chat_id() -> String {
    format!(
        "chat-{}-{:06}",
        js_sys::Date::now() as u64,
        (js_sys::Math::random() * 1e6) as u32
    )
}

/// A conversation's title: the start of its first user message.
pub fn chat_title(messages: &[Entry]) -> String {
    let first = messages
        .iter()
        .find(|e| e.role == Role::User)
        .map(|e| e.text.trim())
        .unwrap_or("");
    let one_line = first.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(48) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None if one_line.is_empty() => "New chat".to_owned(),
        None => one_line,
    }
}

impl AppState {
    /// Create the state, load saved settings, and persist them whenever they change.
    pub fn provide() -> Self {
        let saved: Settings = gloo_storage::LocalStorage::get(STORAGE_KEY).unwrap_or_default();
        let state = AppState {
            status: RwSignal::new(ModelStatus::Empty),
            messages: RwSignal::new(Vec::new()),
            generating: RwSignal::new(false),
            settings: RwSignal::new(saved.sanitized()),
            worker_ready: RwSignal::new(false),
            notice: RwSignal::new(None),
            cache: RwSignal::new(Vec::new()),
            quota: RwSignal::new(None),
            backend: RwSignal::new(None),
            chat_id: RwSignal::new(new_chat_id()),
            chats: RwSignal::new(Vec::new()),
            origin: RwSignal::new_local(None),
            engine_note: RwSignal::new(None),
            engine_silent_s: RwSignal::new(None),
            load_error: RwSignal::new(None),
            previous: RwSignal::new_local(None),
            adapter: RwSignal::new(None),
            drawer_open: RwSignal::new(false),
            editing: RwSignal::new(None),
            draft: RwSignal::new(String::new()),
            chat_title: RwSignal::new(None),
        };
        Effect::new(move |_| {
            let s = state.settings.get();
            let _ = gloo_storage::LocalStorage::set(STORAGE_KEY, &s);
        });
        provide_context(state);
        state
    }
}

impl AppState {
    /// The context the engine uses for the loaded model: the Context size setting, at most what
    /// the model was trained for (`bin/worker.rs` applies the same rule).
    pub fn n_ctx_in_use(&self) -> u64 {
        let setting = self.settings.with(|s| s.clone().sanitized().n_ctx) as u64;
        match self.status.get() {
            ModelStatus::Ready { n_ctx, .. } if n_ctx > 0 => setting.min(n_ctx),
            _ => setting,
        }
    }

    /// The open chat's title: the user's, else the start of its first message.
    pub fn title(&self) -> String {
        self.chat_title
            .get()
            .unwrap_or_else(|| self.messages.with(|m| chat_title(m)))
    }
}

pub fn use_state() -> AppState {
    expect_context::<AppState>()
}
