use leptos::prelude::*;

use super::{Composer, MessageList};

/// The conversation and the box to type in.
#[component]
pub fn ChatPanel() -> impl IntoView {
    view! {
        <section class="card chat" aria-label="Chat">
            <MessageList/>
            <Composer/>
        </section>
    }
}
