//! Conversations in IndexedDB (the "chats" store of the database `model_store.rs` opens): saved
//! after every message and reply, listed newest first, restored on the next visit.

use leptos::prelude::*;

use crate::model_store::{delete_one, get_all, put_one, CHATS};
use crate::state::{chat_title, AppState, ChatRecord};

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
    let chat = ChatRecord {
        id: state.chat_id.get_untracked(),
        title: chat_title(&messages),
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

/// At start-up: list the saved conversations and reopen the newest.
pub async fn init(state: AppState) {
    refresh(state).await;
    let newest = state.chats.with_untracked(|c| c.first().cloned());
    if let Some(chat) = newest {
        if state.messages.with_untracked(|m| m.is_empty()) {
            open(state, chat);
        }
    }
}

/// Show a saved conversation.
pub fn open(state: AppState, chat: ChatRecord) {
    state.chat_id.set(chat.id);
    state.messages.set(chat.messages);
}

/// Start an empty conversation (the current one stays saved).
pub fn new_chat(state: AppState) {
    save_current(state);
    state.chat_id.set(crate::state::new_chat_id());
    state.messages.set(Vec::new());
}
