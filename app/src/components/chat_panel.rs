use leptos::prelude::*;

use super::{Composer, EngineNotice, MessageList};

/// The conversation and the box to type in.
#[component]
pub fn ChatPanel() -> impl IntoView {
    view! {
        <section class="card chat" aria-label="Chat">
            <MessageList/>
            <EngineNotice/>
            <Composer/>
        </section>
    }
}
