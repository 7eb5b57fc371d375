//! The root component: shared state, the engine worker, and the page layout — a sidebar (chats,
//! models, storage, settings, about; a drawer on narrow screens) beside the chat, which fills the
//! window's height.

use leptos::prelude::*;

use crate::chat_store;
use crate::components::{
    About, BackendBadge, ChatPanel, Conversations, DropZone, LoadProgress, ModelPicker,
    SettingsPanel, SidebarHead, StorageView, TopBar,
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
    leptos::task::spawn_local(async move {
        state
            .adapter
            .set(Some(crate::platform::probe_adapter().await));
    });
    crate::keyboard::install(state);
    let close = move |_| state.drawer_open.set(false);
    view! {
        <div class="app" class:drawer-open=move || state.drawer_open.get()>
            <aside class="sidebar" id="sidebar" aria-label="Chats, models and settings">
                <SidebarHead/>
                <BackendBadge/>
                <Conversations/>
                <ModelPicker/>
                <DropZone/>
                <StorageView/>
                <SettingsPanel/>
                <About/>
            </aside>
            <div class="scrim" aria-hidden="true" on:click=close></div>
            <main class="chat-col">
                <TopBar/>
                <LoadProgress/>
                <ChatPanel/>
            </main>
        </div>
    }
}
