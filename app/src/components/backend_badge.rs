use leptos::prelude::*;

use crate::platform::detect_backend;

/// Shows whether this browser offers WebGPU or the engine will use the CPU fallback.
#[component]
pub fn BackendBadge() -> impl IntoView {
    let backend = detect_backend();
    view! {
        <section class="card backend" aria-live="polite">
            <span class=backend.css_class()>{backend.label()}</span>
            <p class="muted">{backend.detail()}</p>
        </section>
    }
}
