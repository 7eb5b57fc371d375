use leptos::prelude::*;

use crate::chat_store;
use crate::state::{use_state, ChatRecord};

/// The saved conversations, newest first: open one, delete one, or start a new chat.
#[component]
pub fn Conversations() -> impl IntoView {
    let state = use_state();
    let busy = move || state.generating.get();
    view! {
        <section class="card conversations" aria-label="Conversations" id="conversations">
            <div class="card-head">
                <h2>"Chats"</h2>
                <button class="btn btn-small" id="new-chat" on:click=move |_| chat_store::new_chat(state)
                    disabled=busy>
                    "New chat"
                </button>
            </div>
            {move || {
                let chats = state.chats.get();
                if chats.is_empty() {
                    view! { <p class="muted">"Your conversations are kept in this browser."</p> }.into_any()
                } else {
                    view! {
                        <ul class="chat-list">
                            {chats.into_iter().map(|c| view! { <ChatItem chat=c/> }).collect_view()}
                        </ul>
                    }
                    .into_any()
                }
            }}
        </section>
    }
}

#[component]
fn ChatItem(chat: ChatRecord) -> impl IntoView {
    let state = use_state();
    let id = chat.id.clone();
    let active = {
        let id = id.clone();
        move || state.chat_id.with(|c| *c == id)
    };
    let title = chat.title.clone();
    let open = move |_| {
        if !state.generating.get_untracked() {
            chat_store::open(state, chat.clone());
        }
    };
    let delete = move |_| {
        let id = id.clone();
        leptos::task::spawn_local(async move {
            if let Err(e) = chat_store::delete(&id).await {
                state.notice.set(Some(e));
            }
            crate::engine_link::forget_chat(id.clone());
            if state.chat_id.get_untracked() == id {
                state.chat_id.set(crate::state::new_chat_id());
                state.messages.set(Vec::new());
            }
            chat_store::refresh(state).await;
        });
    };
    view! {
        <li class="chat-item" class:active=active>
            <button class="chat-open" on:click=open disabled=move || state.generating.get()>
                {title.clone()}
            </button>
            <button class="btn-icon" on:click=delete disabled=move || state.generating.get()
                aria-label=format!("Delete chat {title}") title="Delete">
                "×"
            </button>
        </li>
    }
}
