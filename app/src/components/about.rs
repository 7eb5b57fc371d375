use inference::quant::GgmlType;
use leptos::prelude::*;

/// What this is, and the developer detail: the GGUF tensor types the engine runs (straight from
/// the `inference` crate).
#[component]
pub fn About() -> impl IntoView {
    view! {
        <details class="card about" id="about">
            <summary>"About"</summary>
            <p class="muted">
                "wasm-chord is a browser-first LLM runtime in Rust: GGUF models run on WebGPU \
                 through its own WGSL kernels, or on a SIMD-wasm CPU engine. Everything runs on \
                 this device — no server sees your prompts."
            </p>
            <h3>"Supported tensor types"</h3>
            <ul class="chips types">
                {GgmlType::ALL
                    .iter()
                    .map(|t| view! { <li class="chip">{t.name()}</li> })
                    .collect_view()}
            </ul>
        </details>
    }
}
