use leptos::prelude::*;

use chord_app::markdown;

use crate::chat_store;
use crate::clipboard;
use crate::engine_link;
use crate::keyboard::focus_composer;
use crate::state::{use_state, Role};

/// Within this many pixels of the end, the list counts as "at the end" and follows new text.
const AT_END_PX: i32 = 48;

/// A streaming reply in the page: its finished blocks stay in the DOM as they are; only the
/// open block's nodes, at the end, are replaced on each token.
#[derive(Default)]
struct Shown {
    md: markdown::Streaming,
    /// Length of the finished blocks' HTML in the DOM.
    done_len: usize,
    /// The last node before the open block's nodes (`None`: they start the body).
    open_after: Option<web_sys::Node>,
}

impl Shown {
    fn stream(&mut self, el: &web_sys::HtmlDivElement, text: &str) {
        let (done, open) = self.md.update(text);
        if done.len() != self.done_len || (done.is_empty() && self.open_after.is_some()) {
            el.set_inner_html(done);
            self.done_len = done.len();
            self.open_after = el.last_child();
        } else {
            // Remove the previous open block's nodes.
            while let Some(last) = el.last_child() {
                if self
                    .open_after
                    .as_ref()
                    .is_some_and(|after| after.is_same_node(Some(&last)))
                {
                    break;
                }
                let _ = el.remove_child(&last);
            }
        }
        let _ = el.insert_adjacent_html("beforeend", &open);
    }
}

/// The conversation, newest at the bottom; the last reply streams in token by token. The list
/// follows the reply (keeps its end in view) unless the user scrolled up — then a "Jump to
/// latest" button brings it back; a reopened chat opens at its end (or where it was left).
#[component]
pub fn MessageList() -> impl IntoView {
    let state = use_state();
    let count = move || state.messages.with(|m| m.len());
    let list = NodeRef::<leptos::html::Div>::new();
    // Follow the end of the conversation.
    let stick = RwSignal::new(true);
    let last_saved = StoredValue::new(0.0f64);
    let to_end = move || {
        request_animation_frame(move || {
            if let Some(el) = list.get_untracked() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    };
    let on_scroll = move |_| {
        let Some(el) = list.get_untracked() else {
            return;
        };
        let at_end = el.scroll_height() - el.scroll_top() - el.client_height() <= AT_END_PX;
        if stick.get_untracked() != at_end {
            stick.set(at_end);
        }
        // Note the position for the next visit (at most every 300 ms).
        let now = js_sys::Date::now();
        if now - last_saved.get_value() > 300.0 || at_end {
            last_saved.set_value(now);
            chat_store::remember_scroll(
                &state.chat_id.get_untracked(),
                f64::from(el.scroll_top()),
                at_end,
            );
        }
    };
    // New text (a message, a token): keep the end in view while following. The user's own new
    // message always brings the list to its end.
    let seen = StoredValue::new(0usize);
    Effect::new(move |_| {
        let (len, last_user, text_len) = state.messages.with(|m| {
            (
                m.len(),
                m.last().is_some_and(|e| e.role == Role::User),
                m.last().map_or(0, |e| {
                    e.text.len() + e.error.as_ref().map_or(0, |e| e.len())
                }),
            )
        });
        let _ = (text_len, state.generating.get());
        let grew = len > seen.get_value();
        seen.set_value(len);
        let sent = grew && (last_user || state.generating.get_untracked());
        if sent && !stick.get_untracked() {
            stick.set(true);
        }
        if stick.get_untracked() {
            // Following: the next visit opens this chat at its end too (a scroll event may not
            // come to say so when the end is already where the list is).
            if grew {
                chat_store::remember_scroll(&state.chat_id.get_untracked(), 0.0, true);
            }
            to_end();
        }
    });
    // The list's box changes size (the status card above it grows or shrinks, the window or the
    // on-screen keyboard resizes it): keep its end in view while following.
    let observer = StoredValue::new_local(None::<web_sys::ResizeObserver>);
    Effect::new(move |_| {
        let Some(el) = list.get() else { return };
        if observer.with_value(|o| o.is_some()) {
            return;
        }
        let on_resize = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
            if stick.get_untracked() {
                if let Some(el) = list.get_untracked() {
                    el.set_scroll_top(el.scroll_height());
                }
            }
        });
        if let Ok(o) =
            web_sys::ResizeObserver::new(wasm_bindgen::JsCast::unchecked_ref(on_resize.as_ref()))
        {
            o.observe(&el);
            observer.set_value(Some(o));
        }
        // The list lives as long as the page.
        on_resize.forget();
    });
    // Another chat opened: at its end, or where it was scrolled on the last visit.
    Effect::new(move |prev: Option<String>| {
        let id = state.chat_id.get();
        if prev.as_deref() == Some(id.as_str()) {
            return id;
        }
        match chat_store::saved_scroll(&id).filter(|_| prev.is_none()) {
            Some(saved) => {
                stick.set(false);
                request_animation_frame(move || {
                    if let Some(el) = list.get_untracked() {
                        el.set_scroll_top(saved.scroll_top as i32);
                    }
                });
            }
            None => {
                stick.set(true);
                // (Not for the empty chat the page starts with: the saved one is opened next.)
                if state.messages.with_untracked(|m| !m.is_empty()) {
                    chat_store::remember_scroll(&id, 0.0, true);
                }
                to_end();
            }
        }
        id
    });
    let jump = move |_| {
        stick.set(true);
        if let Some(el) = list.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    };
    view! {
        <div class="messages" aria-live="polite" node_ref=list on:scroll=on_scroll>
            <Show when=move || count() == 0>
                <p class="empty muted">
                    {move || if state.status.with(|s| s.ready()) {
                        "The model is ready. Ask anything to start."
                    } else {
                        "Load a model, then say something."
                    }}
                </p>
            </Show>
            <For each=move || 0..count() key=|i| *i let:index>
                <MessageBubble index=index/>
            </For>
        </div>
        <Show when=move || !stick.get() && count() != 0>
            <button class="btn jump-latest" on:click=jump>"↓ Jump to latest"</button>
        </Show>
    }
}

/// One message: the user's as plain text, the model's as safe Markdown, with its speed.
#[component]
fn MessageBubble(index: usize) -> impl IntoView {
    let state = use_state();
    let entry = Memo::new(move |_| state.messages.with(|m| m.get(index).cloned()));
    let role = move || entry.with(|e| e.as_ref().map(|e| e.role).unwrap_or(Role::User));
    let ids = move || {
        entry.with(|e| {
            e.as_ref()
                .map(|e| {
                    e.ids
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        })
    };
    let stop = move || {
        entry.with(|e| {
            e.as_ref()
                .and_then(|e| e.stats.as_ref().map(|s| s.stop.clone()))
                .unwrap_or_default()
        })
    };
    let stats = move || {
        entry.with(|e| {
            e.as_ref()
                .and_then(|e| e.stats.as_ref())
                .map(|s| s.summary())
        })
    };
    // The cache's work for this reply, for tests and tools: "prompt,evaluated" tokens and the
    // time to the first token in ms.
    let counts = move || {
        entry.with(|e| {
            e.as_ref()
                .and_then(|e| e.stats.as_ref())
                .map(|s| {
                    format!(
                        "{},{},{:.0}",
                        s.prompt_tokens, s.evaluated_tokens, s.ttft_ms
                    )
                })
                .unwrap_or_default()
        })
    };
    let error = move || entry.with(|e| e.as_ref().and_then(|e| e.error.clone()));
    let streaming = move || {
        state.generating.get()
            && index + 1 == state.messages.with(|m| m.len())
            && role() == Role::Assistant
    };
    let is_last = move || index + 1 == state.messages.with(|m| m.len());
    let body = NodeRef::<leptos::html::Div>::new();
    let shown = StoredValue::new_local(Shown::default());
    Effect::new(move |_| {
        let Some(el) = body.get() else { return };
        let live = streaming();
        entry.with(|e| match e {
            Some(e) if e.role == Role::Assistant && live => {
                shown.update_value(|s| s.stream(&el, &e.text));
            }
            Some(e) => {
                let html = match e.role {
                    Role::Assistant => markdown::to_safe_html(&e.text),
                    Role::User => markdown::escape(&e.text),
                };
                el.set_inner_html(&html);
                shown.set_value(Shown::default());
            }
            None => el.set_inner_html(""),
        });
    });
    let show_actions = move || !streaming();
    let busy = move || state.generating.get();
    let copied = RwSignal::new(false);
    let copy = move |_| {
        let text = entry.with_untracked(|e| e.as_ref().map(|e| e.text.clone()).unwrap_or_default());
        copied.set(clipboard::copy(&text));
    };
    let edit = move |_| {
        let text = entry.with_untracked(|e| e.as_ref().map(|e| e.text.clone()).unwrap_or_default());
        state.draft.set(text);
        state.editing.set(Some(index));
        focus_composer();
    };
    let editing = move || state.editing.get() == Some(index);
    view! {
        <article
            class=move || format!("msg msg-{}", role().as_str())
            class:streaming=streaming
            class:editing=editing
            data-token-ids=ids
            data-stop=stop
            data-prompt=counts
        >
            <div class="msg-body" node_ref=body></div>
            {move || stats().map(|s| view! { <p class="msg-stats">{s}</p> })}
            {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <Show when=show_actions>
                <div class="msg-actions">
                    <Show when=move || role() == Role::User>
                        <button class="btn-link edit" on:click=edit disabled=busy
                            title="Change this message and answer it again (what followed goes)">
                            "Edit"
                        </button>
                    </Show>
                    <button class="btn-link copy" on:click=copy>
                        {move || if copied.get() { "Copied" } else { "Copy" }}
                    </button>
                    <button class="btn-link delete" disabled=busy
                        on:click=move |_| engine_link::delete_message(state, index)>
                        "Delete"
                    </button>
                    <Show when=move || is_last() && role() == Role::Assistant>
                        <button class="btn-link regenerate"
                            disabled=move || !state.status.with(|s| s.ready())
                            on:click=move |_| engine_link::regenerate(state)>
                            "Regenerate"
                        </button>
                    </Show>
                </div>
            </Show>
        </article>
    }
}
