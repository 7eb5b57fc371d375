//! Keys for the whole page: Esc stops a streaming reply (or cancels an edit, or closes the
//! drawer); the composer handles Enter and ↑ itself (`components/composer.rs`).

use leptos::prelude::*;

use crate::engine_link;
use crate::state::AppState;

pub fn install(state: AppState) {
    let handle = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() != "Escape" || ev.default_prevented() {
            return;
        }
        if state.generating.get_untracked() {
            engine_link::stop();
            ev.prevent_default();
        } else if state.editing.get_untracked().is_some() {
            state.editing.set(None);
            state.draft.set(String::new());
        } else if state.drawer_open.get_untracked() {
            state.drawer_open.set(false);
        } else {
            return;
        }
        focus_composer();
    });
    // The page lives as long as the app: the listener is never removed.
    std::mem::forget(handle);
}

/// Put the cursor in the message box (after the next render, so a re-enabled box takes it).
pub fn focus_composer() {
    request_animation_frame(|| {
        let el = document()
            .query_selector(".composer textarea")
            .ok()
            .flatten()
            .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok());
        if let Some(el) = el {
            let _ = el.focus();
        }
    });
}
