//! The root component: shared state, the engine worker, and the page layout, top to bottom.

use leptos::prelude::*;

use crate::chat_store;
use crate::components::{
    BackendBadge, ChatPanel, Conversations, DropZone, Header, LoadProgress, ModelPicker,
    SettingsPanel, StorageView, SupportedTypes,
};
use crate::engine_link;
use crate::loads;
use crate::state::AppState;

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::provide();
    engine_link::start(state);
    leptos::task::spawn_local(loads::init(state));
    leptos::task::spawn_local(chat_store::init(state));
    view! {
        <Header/>
        <main class="page">
            <div class="layout">
                <aside class="sidebar">
                    <Conversations/>
                    <ModelPicker/>
                    <DropZone/>
                    <StorageView/>
                    <SettingsPanel/>
                    <BackendBadge/>
                </aside>
                <div class="main-col">
                    <LoadProgress/>
                    <ChatPanel/>
                </div>
            </div>
            <SupportedTypes/>
        </main>
        <footer class="site-footer">
            "Runs entirely in your browser — no server sees your prompts."
        </footer>
    }
}
