use leptos::prelude::*;

use crate::platform::{detect_backend, Backend};
use crate::state::use_state;

/// Which engine runs the model: before a load, what this browser offers; after, the engine
/// actually in use — the GPU adapter, or the reason the CPU fallback runs.
#[component]
pub fn BackendBadge() -> impl IntoView {
    let state = use_state();
    let detected = detect_backend();
    let body = move || match state.backend.get() {
        None => view! {
            <span class=detected.css_class() data-backend="detected">{detected.label()}</span>
            <p class="muted">{detected.detail()}</p>
        }
        .into_any(),
        Some(b) if b.is_gpu() => view! {
            <span class=Backend::WebGpu.css_class() data-backend="webgpu">"Running on WebGPU"</span>
            <p class="muted adapter">{b.adapter.unwrap_or_default()}</p>
        }
        .into_any(),
        Some(b) => view! {
            <span class=Backend::Cpu.css_class() data-backend="cpu">"Running on the CPU"</span>
            <p class="muted fallback-reason">{b.fallback.unwrap_or_default()}</p>
        }
        .into_any(),
    };
    view! {
        <section class="card backend" id="backend" aria-live="polite">
            {body}
        </section>
    }
}
