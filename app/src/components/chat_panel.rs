use leptos::prelude::*;

/// Where the conversation will go. For now a placeholder: model picking, download progress and the
/// streamed reply arrive with the engine worker.
#[component]
pub fn ChatPanel() -> impl IntoView {
    view! {
        <section class="card chat" aria-label="Chat">
            <h2>"Chat"</h2>
            <div class="chat-placeholder">
                <p>"Model picker and chat coming soon."</p>
                <p class="muted">
                    "Default model: SmolLM2-135M-Instruct (Q4_1), served from "
                    <code>"/models/"</code> "."
                </p>
            </div>
            <form class="composer" on:submit=|ev| ev.prevent_default()>
                <input type="text" placeholder="Ask something…" disabled=true aria-label="Message"/>
                <button type="submit" disabled=true>"Send"</button>
            </form>
        </section>
    }
}
