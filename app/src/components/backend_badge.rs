use leptos::prelude::*;

use crate::engine_link::{cpu_threads, CpuThreads};
use crate::platform::{detect_backend, Backend};
use crate::state::use_state;

/// Which engine runs the model. Before a load: what will run here with the Engine setting (the
/// WebGPU adapter is asked; a software renderer means the CPU engine, unless WebGPU is forced,
/// which is shown in amber). After: the engine actually in use — the GPU adapter, or the reason
/// the CPU engine runs, and how many threads it runs (one where the page is not cross-origin
/// isolated, which it says).
#[component]
pub fn BackendBadge() -> impl IntoView {
    let state = use_state();
    let detected = detect_backend();
    let pref = move || state.settings.with(|s| s.backend);
    // How many threads the CPU engine runs ("CPU · 4 threads"), or why one.
    let threads = cpu_threads();
    let threads_line = move || {
        let (n, text) = match threads.get() {
            CpuThreads::Starting => (0, "CPU · starting its threads…".to_owned()),
            CpuThreads::Running(n) => (n, format!("CPU · {n} threads")),
            CpuThreads::One(why) => (1, format!("CPU · {why}")),
        };
        view! { <p class="muted threads" data-threads=n>{text}</p> }
    };
    let body = move || match (state.backend.get(), state.adapter.get()) {
        (None, None) => view! {
            <span class=detected.css_class() data-backend="detected">{detected.label()}</span>
            <p class="muted">{detected.detail()}</p>
        }
        .into_any(),
        (None, Some(probe)) => {
            let gpu = probe.runs_on_gpu(pref());
            let class = if probe.warns(pref()) {
                "badge badge-warn"
            } else if gpu {
                Backend::WebGpu.css_class()
            } else {
                Backend::Cpu.css_class()
            };
            view! {
                <span class=class data-backend=if gpu { "will-webgpu" } else { "will-cpu" }>
                    {probe.label(pref())}
                </span>
                <p class="muted">{probe.detail(pref())}</p>
            }
            .into_any()
        }
        (Some(b), probe) if b.is_gpu() => {
            let software =
                probe.is_some_and(|p| matches!(p, crate::platform::AdapterProbe::Software(_)));
            view! {
                <span class=if software { "badge badge-warn" } else { Backend::WebGpu.css_class() }
                    data-backend="webgpu">
                    {if software { "Running on WebGPU (software renderer: slow)" } else { "Running on WebGPU" }}
                </span>
                <p class="muted adapter">{b.adapter.unwrap_or_default()}</p>
            }
            .into_any()
        }
        (Some(b), _) => view! {
            <span class=Backend::Cpu.css_class() data-backend="cpu">"Running on the CPU"</span>
            <p class="muted fallback-reason">{b.fallback.unwrap_or_default()}</p>
            {threads_line.clone()}
        }
        .into_any(),
    };
    view! {
        <section class="card backend" id="backend" aria-live="polite">
            {body}
        </section>
    }
}
