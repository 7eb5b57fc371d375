use leptos::prelude::*;

use crate::state::use_state;

/// The top of the sidebar: the app's name, and a close button when it is a drawer.
#[component]
pub fn SidebarHead() -> impl IntoView {
    let state = use_state();
    view! {
        <div class="sidebar-head">
            <img class="logo" src="static/icon.svg" alt="" width="32" height="32"/>
            <h1>"wasm-chord"</h1>
            <button class="btn-icon drawer-close" aria-label="Close the menu" title="Close"
                on:click=move |_| state.drawer_open.set(false)>
                "×"
            </button>
        </div>
    }
}
