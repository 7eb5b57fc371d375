use leptos::prelude::*;

use chord_app::explain::Explained;
use chord_app::format;
use chord_app::transcript::thousands;

use crate::loads;
use crate::state::{use_state, ModelStatus};

/// An error as a plain sentence, with the technical message behind a "Details" toggle.
#[component]
pub fn ErrorBox(error: Explained) -> impl IntoView {
    let detail = (!error.detail.is_empty()).then(|| {
        view! {
            <details class="error-detail">
                <summary>"Details"</summary>
                <code>{error.detail.clone()}</code>
            </details>
        }
    });
    view! {
        <div class="error" role="alert">
            <p class="error-sentence">{error.sentence.clone()}</p>
            {detail}
        </div>
    }
}

/// The model's status: download/transfer progress with Cancel, "preparing", loaded, or an error.
#[component]
pub fn LoadProgress() -> impl IntoView {
    let state = use_state();
    let body = move || {
        match state.status.get() {
        ModelStatus::Empty => view! {
            <p class="muted">
                "No model loaded yet. Choose one under "
                <button class="btn-link open-models" on:click=move |_| {
                    state.drawer_open.set(true);
                    if let Some(el) = document().get_element_by_id("models") {
                        el.scroll_into_view();
                    }
                }>"Pick a model"</button>
                " or drop a .gguf file there."
            </p>
        }
        .into_any(),
        ModelStatus::Transferring {
            name,
            done,
            total,
            bytes_per_s,
            source,
        } => {
            let pct = format::percent(done, total);
            let verb = source.verb();
            let eta = if bytes_per_s > 0.0 && total > done {
                format!(" · {} left", format::duration((total - done) as f64 / bytes_per_s))
            } else {
                String::new()
            };
            view! {
                <div class="progress-head">
                    <span>{verb} " " <strong>{name}</strong></span>
                    <button class="btn btn-ghost" on:click=move |_| loads::cancel_load(state)>
                        "Cancel"
                    </button>
                </div>
                <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"
                    aria-valuenow=format!("{pct:.0}")>
                    <div class="progress-fill" style:width=format!("{pct:.1}%")></div>
                </div>
                <p class="muted progress-figures">
                    {format::bytes(done)} " of " {if total > 0 { format::bytes(total) } else { "?".into() }}
                    " · " {format!("{pct:.0}%")} " · " {format!("{:.1} MB/s", bytes_per_s / 1e6)} {eta}
                </p>
            }
            .into_any()
        }
        ModelStatus::Preparing { name } => view! {
            <p><span class="spinner" aria-hidden="true"></span> "Preparing " <strong>{name}</strong> "…"</p>
        }
        .into_any(),
        ModelStatus::Ready {
            name,
            arch,
            n_params,
            n_ctx,
        } => view! {
            <p class="loaded">
                <span class="dot" aria-hidden="true"></span>
                <strong class="model-title">{name}</strong>
                <span class="muted">
                    " · " {arch} " · " {format::params(n_params)} " params · context "
                    <span class="ctx-in-use">{move || thousands(state.n_ctx_in_use())}</span>
                    {move || (state.n_ctx_in_use() < n_ctx)
                        .then(|| format!(" (model max {})", thousands(n_ctx)))}
                </span>
            </p>
        }
        .into_any(),
        ModelStatus::Failed(error) => view! { <ErrorBox error/> }.into_any(),
    }
    };
    view! {
        <section class="card status" id="model-status" data-state=move || state.status.with(|s| s.key())
            aria-live="polite">
            {body}
            {move || state.load_error.get().map(|error| view! {
                <div class="load-error">
                    <ErrorBox error/>
                    <p class="muted kept">"The model you were using is still loaded."
                        " " <button class="btn-link" on:click=move |_| state.load_error.set(None)>"Dismiss"</button>
                    </p>
                </div>
            })}
            {move || state.notice.get().map(|n| view! { <p class="notice" role="status">{n}</p> })}
        </section>
    }
}
