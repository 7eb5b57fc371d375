use leptos::prelude::*;

use chord_app::markdown;

use crate::engine_link;
use crate::state::{use_state, Role};

/// Put `text` on the clipboard (`navigator.clipboard.writeText`); `false` if the browser refused.
fn copy_to_clipboard(text: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let clipboard = js_sys::Reflect::get(&window.navigator(), &"clipboard".into());
    let Ok(clipboard) = clipboard else {
        return false;
    };
    let write = js_sys::Reflect::get(&clipboard, &"writeText".into())
        .ok()
        .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
    write.is_some_and(|f| f.call1(&clipboard, &text.into()).is_ok())
}

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

/// The conversation, newest at the bottom; the last reply streams in token by token.
#[component]
pub fn MessageList() -> impl IntoView {
    let state = use_state();
    let count = move || state.messages.with(|m| m.len());
    view! {
        <div class="messages" aria-live="polite">
            <Show when=move || count() == 0>
                <p class="empty muted">"Load a model, then say something."</p>
            </Show>
            <For each=move || 0..count() key=|i| *i let:index>
                <MessageBubble index=index/>
            </For>
        </div>
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
    let show_actions = move || role() == Role::Assistant && !streaming();
    let copied = RwSignal::new(false);
    let copy = move |_| {
        let text = entry.with_untracked(|e| e.as_ref().map(|e| e.text.clone()).unwrap_or_default());
        copied.set(copy_to_clipboard(&text));
    };
    view! {
        <article
            class=move || format!("msg msg-{}", role().as_str())
            class:streaming=streaming
            data-token-ids=ids
            data-stop=stop
            data-prompt=counts
        >
            <div class="msg-body" node_ref=body></div>
            {move || stats().map(|s| view! { <p class="msg-stats">{s}</p> })}
            {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <Show when=show_actions>
                <div class="msg-actions">
                    <button class="btn-link copy" on:click=copy>
                        {move || if copied.get() { "Copied" } else { "Copy" }}
                    </button>
                    <Show when=is_last>
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
