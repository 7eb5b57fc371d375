use leptos::prelude::*;

use chord_app::catalog::{CatalogModel, CATALOG, DEFAULT_MODEL};
use chord_app::format;

use crate::loads;
use crate::state::{use_state, AppState};

/// The catalog of models to download, the default one first, and a field for any GGUF URL.
#[component]
pub fn ModelPicker() -> impl IntoView {
    view! {
        <section class="card picker" aria-label="Models" id="models">
            <h2>"Pick a model"</h2>
            <ul class="model-list">
                {CATALOG.iter().map(|m| view! { <ModelCard model=m/> }).collect_view()}
            </ul>
            <UrlForm/>
        </section>
    }
}

fn open(state: AppState, name: String, url: String, sha256: Option<String>) {
    leptos::task::spawn_local(loads::open_url(state, name, url, sha256));
}

#[component]
fn ModelCard(model: &'static CatalogModel) -> impl IntoView {
    let state = use_state();
    let disabled = move || state.status.with(|s| s.busy()) || state.generating.get();
    let cached = move || {
        state.cache.with(|c| {
            c.iter()
                .find(|e| e.id == model.url)
                .map(|e| (e.complete, format::percent(e.stored_bytes(), e.size)))
        })
    };
    let load = move |_| {
        open(
            state,
            model.name.to_owned(),
            model.url.to_owned(),
            model.sha256.map(str::to_owned),
        )
    };
    let size = if model.local {
        format::bytes(model.size)
    } else {
        format!("≈ {}", format::bytes(model.size))
    };
    view! {
        <li class="model-card" class:default=model.id == DEFAULT_MODEL data-model=model.id
            data-cached=move || match cached() { Some((true, _)) => "complete", Some(_) => "partial", None => "no" }>
            <div class="model-info">
                <span class="model-name">{model.name}</span>
                <span class="model-meta">
                    {model.params} " params · " {model.quant} " · " {size} " · " {model.license}
                </span>
                <span class="model-source">
                    {if model.local { "served by this site" } else { "Hugging Face" }}
                    {move || match cached() {
                        Some((true, _)) => " · cached".to_owned(),
                        Some((false, pct)) => format!(" · {pct:.0}% downloaded"),
                        None => String::new(),
                    }}
                </span>
                <FitCheck name=model.name.to_owned() url=Signal::derive(move || model.url.to_owned())/>
            </div>
            <button class="btn" on:click=load disabled=disabled>
                {move || match cached() {
                    Some((false, _)) => "Resume",
                    _ => "Load",
                }}
            </button>
        </li>
    }
}

/// "Will it fit?": the model's header by Range requests against this browser's limits, before a
/// byte of weights is downloaded (`fit_check.rs`).
#[component]
fn FitCheck(name: String, url: Signal<String>) -> impl IntoView {
    let state = use_state();
    let result = RwSignal::new(None::<Result<chord_app::fit::Report, String>>);
    let checking = RwSignal::new(false);
    let run = move |_| {
        let (name, url) = (name.clone(), url.get_untracked());
        if url.trim().is_empty() {
            return;
        }
        checking.set(true);
        result.set(None);
        leptos::task::spawn_local(async move {
            let r = crate::fit_check::check_url(state, &name, &url).await;
            result.set(Some(r));
            checking.set(false);
        });
    };
    view! {
        <span class="fit-check">
            <button type="button" class="btn-link check-fit" on:click=run disabled=move || checking.get()>
                {move || if checking.get() { "Checking…" } else { "Will it fit?" }}
            </button>
            {move || result.get().map(|r| match r {
                Ok(report) => view! {
                    <span class="fit" data-fit=report.fit.key() class:fit-no=!report.fit.runs()>
                        {report.sentence}
                    </span>
                }.into_any(),
                Err(e) => view! { <span class="fit fit-no" data-fit="unknown">{format!("Could not check: {e}")}</span> }.into_any(),
            })}
        </span>
    }
}

/// Any GGUF URL (Hugging Face `resolve/main/…` links work: they allow CORS and Range).
#[component]
fn UrlForm() -> impl IntoView {
    let state = use_state();
    let url = RwSignal::new(String::new());
    let disabled = move || state.status.with(|s| s.busy()) || state.generating.get();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let u = url.get_untracked().trim().to_owned();
        if u.is_empty() {
            return;
        }
        let name = u
            .rsplit('/')
            .next()
            .map(|n| n.split(['?', '#']).next().unwrap_or(n))
            .filter(|n| !n.is_empty())
            .unwrap_or("model.gguf")
            .to_owned();
        open(state, name, u, None);
    };
    view! {
        <form class="url-form" on:submit=submit>
            <label for="model-url" class="muted">"Or any GGUF URL"</label>
            <div class="url-row">
                <input id="model-url" type="text" inputmode="url" autocomplete="off" placeholder="https://huggingface.co/…/model.gguf"
                    prop:value=move || url.get()
                    on:input=move |ev| url.set(event_target_value(&ev))/>
                <button class="btn" type="submit" disabled=disabled>"Open"</button>
            </div>
            <FitCheck name="This model".to_owned() url=Signal::derive(move || url.get().trim().to_owned())/>
        </form>
    }
}
