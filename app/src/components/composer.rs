use leptos::prelude::*;

use crate::engine_link;
use crate::keyboard::focus_composer;
use crate::state::{use_state, Role};

/// Where the user types: Enter sends, Shift+Enter adds a line, ↑ in an empty box edits the last
/// message; Stop (or Esc) while a reply streams. While a message is being edited, sending
/// replaces it and the conversation continues from there.
#[component]
pub fn Composer() -> impl IntoView {
    let state = use_state();
    let text = state.draft;
    let can_send = move || {
        state.status.with(|s| s.ready())
            && !state.generating.get()
            && !text.with(|t| t.trim().is_empty())
    };
    let send = move || {
        if !can_send() {
            return;
        }
        let t = text.get_untracked();
        text.set(String::new());
        match state.editing.get_untracked() {
            Some(index) => {
                state.editing.set(None);
                engine_link::resend_edited(state, index, t);
            }
            None => engine_link::generate(state, t),
        }
        focus_composer();
    };
    let edit_last = move || {
        let last = state.messages.with_untracked(|m| {
            m.iter()
                .rposition(|e| e.role == Role::User)
                .map(|i| (i, m[i].text.clone()))
        });
        if let Some((i, t)) = last {
            state.editing.set(Some(i));
            text.set(t);
        }
    };
    let cancel_edit = move |_| {
        state.editing.set(None);
        text.set(String::new());
        focus_composer();
    };
    view! {
        <form class="composer" on:submit=move |ev| {
            ev.prevent_default();
            send();
        }>
            <Show when=move || state.editing.get().is_some()>
                <p class="editing-note">
                    "Editing a message: sending it answers again from there (later messages go). "
                    <button type="button" class="btn-link" on:click=cancel_edit>"Cancel (Esc)"</button>
                </p>
            </Show>
            <div class="composer-row">
                <textarea
                    rows="2"
                    enterkeyhint="send"
                    placeholder=move || {
                        if state.status.with(|s| s.ready()) {
                            "Message the model"
                        } else {
                            "Load a model first"
                        }
                    }
                    title="Enter sends, Shift+Enter adds a line, ↑ edits your last message, Esc stops a reply"
                    aria-label="Message"
                    prop:value=move || text.get()
                    on:input=move |ev| text.set(event_target_value(&ev))
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            send();
                        } else if ev.key() == "ArrowUp"
                            && text.with_untracked(|t| t.is_empty())
                            && !state.generating.get_untracked()
                        {
                            ev.prevent_default();
                            edit_last();
                        }
                    }
                ></textarea>
                <Show
                    when=move || state.generating.get()
                    fallback=move || view! {
                        <button type="submit" class="btn" disabled=move || !can_send()>
                            {move || if state.editing.get().is_some() { "Resend" } else { "Send" }}
                        </button>
                    }
                >
                    <button type="button" class="btn btn-stop" title="Stop (Esc)"
                        on:click=move |_| {
                            engine_link::stop();
                            focus_composer();
                        }>
                        "Stop"
                    </button>
                </Show>
            </div>
        </form>
    }
}
