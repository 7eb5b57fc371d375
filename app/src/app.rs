//! The root component: the page layout, top to bottom.

use leptos::prelude::*;

use crate::components::{BackendBadge, ChatPanel, Header, SupportedTypes};

#[component]
pub fn App() -> impl IntoView {
    view! {
        <Header/>
        <main class="page">
            <BackendBadge/>
            <ChatPanel/>
            <SupportedTypes/>
        </main>
        <footer class="site-footer">
            "Runs entirely in your browser — no server sees your prompts."
        </footer>
    }
}
