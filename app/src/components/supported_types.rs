use inference::quant::GgmlType;
use leptos::prelude::*;

/// The GGUF tensor types the engine can run, straight from the `inference` crate (which proves the
/// engine builds for wasm32).
#[component]
pub fn SupportedTypes() -> impl IntoView {
    view! {
        <section class="card types">
            <h2>"Supported tensor types"</h2>
            <ul class="chips">
                {GgmlType::ALL
                    .iter()
                    .map(|t| view! { <li class="chip">{t.name()}</li> })
                    .collect_view()}
            </ul>
        </section>
    }
}
