use leptos::prelude::*;

use chord_app::catalog::{CatalogModel, CATALOG, DEFAULT_MODEL};
use chord_app::format;

use crate::engine_link;
use crate::state::use_state;

/// The catalog of models to download, the default one first.
#[component]
pub fn ModelPicker() -> impl IntoView {
    view! {
        <section class="card picker" aria-label="Models">
            <h2>"Pick a model"</h2>
            <ul class="model-list">
                {CATALOG.iter().map(|m| view! { <ModelCard model=m/> }).collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn ModelCard(model: &'static CatalogModel) -> impl IntoView {
    let state = use_state();
    let disabled = move || state.status.with(|s| s.busy()) || state.generating.get();
    let load = move |_| {
        leptos::task::spawn_local(engine_link::download(
            state,
            model.name.to_owned(),
            model.url.to_owned(),
        ));
    };
    let size = if model.local {
        format::bytes(model.size)
    } else {
        format!("≈ {}", format::bytes(model.size))
    };
    view! {
        <li class="model-card" class:default=model.id == DEFAULT_MODEL data-model=model.id>
            <div class="model-info">
                <span class="model-name">{model.name}</span>
                <span class="model-meta">
                    {model.params} " params · " {model.quant} " · " {size}
                </span>
                <span class="model-source">
                    {if model.local { "served by this site" } else { "Hugging Face" }}
                </span>
            </div>
            <button class="btn" on:click=load disabled=disabled>
                "Load"
            </button>
        </li>
    }
}
