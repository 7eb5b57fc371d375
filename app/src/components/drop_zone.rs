use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::loads;
use crate::state::{use_state, AppState};

/// Drop a local `.gguf` here, or pick one: it is streamed to the engine in slices, its header
/// checked first.
#[component]
pub fn DropZone() -> impl IntoView {
    let state = use_state();
    let hover = RwSignal::new(false);
    let keep = RwSignal::new(true);
    let disabled = move || state.status.with(|s| s.busy()) || state.generating.get();

    let on_change = move |ev: leptos::ev::Event| {
        let input = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
        if let Some(input) = input {
            if let Some(file) = input.files().and_then(|f| f.get(0)) {
                start(state, file, keep.get_untracked());
            }
            // Picking the same file again must fire `change` again.
            input.set_value("");
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        hover.set(false);
        if disabled() {
            return;
        }
        if let Some(file) = ev
            .data_transfer()
            .and_then(|dt| dt.files())
            .and_then(|f| f.get(0))
        {
            start(state, file, keep.get_untracked());
        }
    };
    view! {
        <label
            class="drop-zone"
            class:hover=move || hover.get()
            on:dragover=move |ev: leptos::ev::DragEvent| {
                ev.prevent_default();
                hover.set(true);
            }
            on:dragleave=move |_| hover.set(false)
            on:drop=on_drop
        >
            <input
                type="file"
                accept=".gguf"
                class="file-input"
                aria-label="Open a local GGUF model"
                on:change=on_change
                disabled=disabled
            />
            <span class="drop-title">"Drop a .gguf file here, or click to choose one"</span>
            <span class="muted">"It stays on this device: the file is read in slices, never uploaded."</span>
        </label>
        <label class="keep-copy">
            <input type="checkbox" prop:checked=move || keep.get()
                on:change=move |ev| keep.set(event_target_checked(&ev))/>
            " Keep a copy in browser storage for next time"
        </label>
    }
}

fn start(state: AppState, file: web_sys::File, keep: bool) {
    leptos::task::spawn_local(loads::load_file(state, file, keep));
}
