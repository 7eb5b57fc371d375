//! Conversations in IndexedDB (the "chats" store of the database `model_store.rs` opens): saved
//! after every message and reply, listed newest first, restored on the next visit.

use gloo_storage::{LocalStorage, Storage};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model_store::{delete_one, get_all, put_one, CHATS};
use crate::state::{chat_title, AppState, ChatRecord};

/// `localStorage`: the conversation on screen and where it was scrolled, for the next visit.
const OPEN_KEY: &str = "wasm-chord.open-chat.v1";

/// Where the open conversation was scrolled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenChat {
    pub id: String,
    pub scroll_top: f64,
    /// Scrolled to its end (then it opens at its end, however long it has grown).
    pub at_end: bool,
}

/// Note where the open conversation is scrolled.
pub fn remember_scroll(id: &str, scroll_top: f64, at_end: bool) {
    let _ = LocalStorage::set(
        OPEN_KEY,
        OpenChat {
            id: id.to_owned(),
            scroll_top,
            at_end,
        },
    );
}

/// Where conversation `id` was scrolled when the page was last open (`None`: open it at its end).
pub fn saved_scroll(id: &str) -> Option<OpenChat> {
    LocalStorage::get::<OpenChat>(OPEN_KEY)
        .ok()
        .filter(|o| o.id == id && !o.at_end)
}

/// Every saved conversation, newest first.
pub async fn list() -> Result<Vec<ChatRecord>, String> {
    let mut out: Vec<ChatRecord> = get_all(CHATS).await?;
    out.sort_by(|a, b| b.updated_ms.total_cmp(&a.updated_ms));
    Ok(out)
}

async fn put(chat: &ChatRecord) -> Result<(), String> {
    put_one(CHATS, &chat.id, chat).await
}

pub async fn delete(id: &str) -> Result<(), String> {
    delete_one(CHATS, id).await
}

/// Save the conversation on screen (an empty one is not saved) and refresh the list.
pub fn save_current(state: AppState) {
    let messages = state.messages.get_untracked();
    if messages.is_empty() {
        return;
    }
    let custom = state.chat_title.get_untracked();
    let chat = ChatRecord {
        id: state.chat_id.get_untracked(),
        renamed: custom.is_some(),
        title: custom.unwrap_or_else(|| chat_title(&messages)),
        updated_ms: js_sys::Date::now(),
        messages,
    };
    leptos::task::spawn_local(async move {
        if let Err(e) = put(&chat).await {
            state
                .notice
                .set(Some(format!("The conversation was not saved: {e}")));
        }
        refresh(state).await;
    });
}

pub async fn refresh(state: AppState) {
    if let Ok(list) = list().await {
        state.chats.set(list);
    }
}

/// Give the open conversation its own title (empty: back to the start of its first message).
pub fn rename(state: AppState, title: &str) {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    state
        .chat_title
        .set((!title.is_empty()).then(|| title.chars().take(120).collect()));
    save_current(state);
}

/// At start-up: list the saved conversations and reopen the one that was open (else the newest).
pub async fn init(state: AppState) {
    refresh(state).await;
    let open_id = LocalStorage::get::<OpenChat>(OPEN_KEY).ok().map(|o| o.id);
    let chat = state.chats.with_untracked(|c| {
        open_id
            .and_then(|id| c.iter().find(|r| r.id == id).cloned())
            .or_else(|| c.first().cloned())
    });
    if let Some(chat) = chat {
        if state.messages.with_untracked(|m| m.is_empty()) {
            open(state, chat);
        }
    }
}

/// Show a saved conversation.
pub fn open(state: AppState, chat: ChatRecord) {
    state.editing.set(None);
    state
        .chat_title
        .set(chat.renamed.then_some(chat.title.clone()));
    state.chat_id.set(chat.id);
    state.messages.set(chat.messages);
}

/// Start an empty conversation (the current one stays saved).
pub fn new_chat(state: AppState) {
    save_current(state);
    state.editing.set(None);
    state.chat_title.set(None);
    state.chat_id.set(crate::state::new_chat_id());
    state.messages.set(Vec::new());
}
