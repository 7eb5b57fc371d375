use leptos::prelude::*;

use crate::engine_link;
use crate::state::use_state;

/// In the chat area: the engine stopped and was restarted (the conversation is intact), or it has
/// not answered for a while, with a button to restart it.
#[component]
pub fn EngineNotice() -> impl IntoView {
    let state = use_state();
    view! {
        {move || state.engine_note.get().map(|note| view! {
            <p class="engine-note notice" role="status">
                {note}
                <button class="btn-link" on:click=move |_| state.engine_note.set(None)>"Dismiss"</button>
            </p>
        })}
        {move || state.engine_silent_s.get().map(|secs| view! {
            <p class="engine-silent notice" role="status">
                {format!(
                    "The engine has not answered for {secs} s. A long prompt on a large model can \
                     take minutes; if it is stuck, restart it (the conversation is kept). "
                )}
                <button class="btn btn-ghost" on:click=move |_| engine_link::restart_now(state)>
                    "Restart engine"
                </button>
            </p>
        })}
    }
}
