use leptos::prelude::*;

use crate::engine_link;
use crate::state::use_state;

/// Where the user types: Enter sends, Shift+Enter adds a line; Stop while a reply streams.
#[component]
pub fn Composer() -> impl IntoView {
    let state = use_state();
    let text = RwSignal::new(String::new());
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
        engine_link::generate(state, t);
    };
    view! {
        <form class="composer" on:submit=move |ev| {
            ev.prevent_default();
            send();
        }>
            <textarea
                rows="2"
                placeholder=move || {
                    if state.status.with(|s| s.ready()) {
                        "Message the model (Enter sends, Shift+Enter for a new line)"
                    } else {
                        "Load a model first"
                    }
                }
                aria-label="Message"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        send();
                    }
                }
            ></textarea>
            <Show
                when=move || state.generating.get()
                fallback=move || view! {
                    <button type="submit" class="btn" disabled=move || !can_send()>"Send"</button>
                }
            >
                <button type="button" class="btn btn-stop" on:click=move |_| engine_link::stop()>
                    "Stop"
                </button>
            </Show>
        </form>
    }
}
