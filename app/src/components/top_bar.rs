use leptos::prelude::*;

use chord_app::transcript;

use crate::chat_store;
use crate::clipboard;
use crate::state::{use_state, Role};

/// Above the chat: the menu button (narrow screens), the chat's title (click to rename), how much
/// of the context the conversation fills, and Copy chat.
#[component]
pub fn TopBar() -> impl IntoView {
    let state = use_state();
    let renaming = RwSignal::new(false);
    let input = NodeRef::<leptos::html::Input>::new();
    let start_rename = move |_| {
        renaming.set(true);
        request_focus(input);
    };
    let finish = move || {
        if let Some(el) = input.get_untracked() {
            chat_store::rename(state, &el.value());
        }
        renaming.set(false);
    };
    let copied = RwSignal::new(None::<bool>);
    let copy = move |_| {
        let md = state.messages.with_untracked(|m| {
            transcript::to_markdown(
                &state.title(),
                m.iter()
                    .filter(|e| !e.text.is_empty())
                    .map(|e| (e.role.as_str(), e.text.as_str())),
            )
        });
        copied.set(Some(clipboard::copy(&md)));
        set_timeout(
            move || copied.set(None),
            std::time::Duration::from_millis(1500),
        );
    };
    let has_messages = move || state.messages.with(|m| !m.is_empty());
    view! {
        <header class="top-bar">
            <button class="btn-icon menu" aria-label="Open the menu" title="Menu"
                aria-controls="sidebar" aria-expanded=move || state.drawer_open.get().to_string()
                on:click=move |_| state.drawer_open.update(|o| *o = !*o)>
                "☰"
            </button>
            <Show
                when=move || renaming.get()
                fallback=move || view! {
                    <button class="chat-title" title="Rename this chat" on:click=start_rename
                        disabled=move || !has_messages()>
                        {move || state.title()}
                    </button>
                }
            >
                <input class="chat-title-input" node_ref=input aria-label="Chat title"
                    prop:value=move || state.title()
                    on:blur=move |_| finish()
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
                        "Enter" => finish(),
                        "Escape" => renaming.set(false),
                        _ => {}
                    }/>
            </Show>
            <ContextMeter/>
            <button class="btn btn-ghost btn-small copy-chat" on:click=copy
                disabled=move || !has_messages()
                title="Copy the whole chat as Markdown">
                {move || match copied.get() {
                    Some(true) => "Copied",
                    Some(false) => "Copy failed",
                    None => "Copy chat",
                }}
            </button>
        </header>
    }
}

/// Focus `input` once it is in the page (after the next render).
fn request_focus(input: NodeRef<leptos::html::Input>) {
    request_animation_frame(move || {
        if let Some(el) = input.get_untracked() {
            let _ = el.focus();
            el.select();
        }
    });
}

/// "context: 1,048 / 2,048 tokens": the conversation's last prompt and reply (or the one
/// streaming) against the context in use.
#[component]
fn ContextMeter() -> impl IntoView {
    let state = use_state();
    let used = move || {
        state.messages.with(|m| {
            let last = m.iter().rev().find(|e| e.role == Role::Assistant)?;
            match &last.stats {
                Some(s) => Some(u64::from(s.prompt_tokens) + u64::from(s.tokens)),
                None => {
                    // Streaming: the previous reply's prompt is unknown here; count what is known.
                    let before = m
                        .iter()
                        .rev()
                        .filter_map(|e| e.stats.as_ref())
                        .map(|s| u64::from(s.prompt_tokens) + u64::from(s.tokens))
                        .next();
                    before.map(|b| b + last.ids.len() as u64)
                }
            }
        })
    };
    let total = move || state.n_ctx_in_use();
    view! {
        {move || used().map(|u| {
            let t = total();
            let pct = (u as f64 / t.max(1) as f64 * 100.0).min(100.0);
            let full = pct >= 90.0;
            view! {
                <span class="context-meter" class:full=full
                    title="Tokens of this conversation in the model's context (older messages are \
                           left out when it is full)">
                    {format!("context: {} / {} tokens", transcript::thousands(u), transcript::thousands(t))}
                    <span class="meter" aria-hidden="true">
                        <span class="meter-fill" style:width=format!("{pct:.1}%")></span>
                    </span>
                </span>
            }
        })}
    }
}
