use leptos::prelude::*;

/// The page title and a one-line description of the project.
#[component]
pub fn Header() -> impl IntoView {
    view! {
        <header class="site-header">
            <img class="logo" src="static/icon.svg" alt="" width="40" height="40"/>
            <div>
                <h1>"wasm-chord"</h1>
                <p class="tagline">
                    "A browser-first LLM runtime in Rust: pick a GGUF model and chat, on WebGPU or a SIMD-wasm CPU fallback."
                </p>
            </div>
        </header>
    }
}
