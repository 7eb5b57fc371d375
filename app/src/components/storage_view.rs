use leptos::prelude::*;

use chord_app::cache::CachedModel;
use chord_app::format;

use crate::loads::{self, Verdict};
use crate::model_store;
use crate::state::use_state;

/// The models kept in this browser: size, complete or partial, load/resume and delete; and how
/// much of the site's storage quota is used.
#[component]
pub fn StorageView() -> impl IntoView {
    let state = use_state();
    let quota = move || {
        state.quota.get().map(|(used, quota)| {
            format!(
                "{} used of {} available to this site",
                format::bytes(used as u64),
                format::bytes(quota as u64)
            )
        })
    };
    view! {
        <section class="card storage" aria-label="Storage" id="storage">
            <h2>"Stored models"</h2>
            {move || {
                let list = state.cache.get();
                if list.is_empty() {
                    view! { <p class="muted">"Nothing stored yet: downloaded models are kept here."</p> }.into_any()
                } else {
                    view! {
                        <ul class="stored-list">
                            {list.into_iter().map(|m| view! { <StoredModel meta=m/> }).collect_view()}
                        </ul>
                    }
                    .into_any()
                }
            }}
            <p class="muted quota">{quota}</p>
        </section>
    }
}

/// What a Verify of a stored model found.
#[derive(Clone, Debug, PartialEq)]
enum Check {
    None,
    /// Fraction read so far.
    Running(f64),
    Ok,
    Mismatch(String),
    Failed(String),
}

#[component]
fn StoredModel(meta: CachedModel) -> impl IntoView {
    let state = use_state();
    let busy = move || state.status.with(|s| s.busy()) || state.generating.get();
    let status = if meta.complete {
        format::bytes(meta.size)
    } else {
        format!(
            "{} of {} · partial",
            format::bytes(meta.stored_bytes()),
            format::bytes(meta.size)
        )
    };
    let for_load = meta.clone();
    let load = move |_| {
        let m = for_load.clone();
        leptos::task::spawn_local(async move {
            match (m.complete, m.url.clone()) {
                (true, _) => {
                    if let Err(e) = loads::load_cached(state, m).await {
                        loads::failed(state, e, false);
                    }
                }
                (false, Some(url)) => loads::open_url(state, m.name, url, m.sha256).await,
                (false, None) => {}
            }
        });
    };
    let id = meta.id.clone();
    let delete = move |_| {
        let id = id.clone();
        leptos::task::spawn_local(async move {
            if let Err(e) = model_store::delete(&id).await {
                state.notice.set(Some(e));
            }
            loads::refresh_cache(state).await;
        });
    };
    let in_use = {
        let id = meta.id.clone();
        Memo::new(move |_| {
            state.status.with(|s| s.ready())
                && state.origin.with(|o| {
                    o.as_ref().and_then(loads::origin_cache_id).as_deref() == Some(id.as_str())
                })
        })
    };
    let can_load = meta.complete || meta.url.is_some();
    let can_verify = meta.complete && loads::known_sha256(&meta).is_some();
    let check = RwSignal::new(Check::None);
    let for_verify = meta.clone();
    let verify = move |_| {
        let m = for_verify.clone();
        check.set(Check::Running(0.0));
        leptos::task::spawn_local(async move {
            let result = loads::verify(&m, |f| check.set(Check::Running(f))).await;
            check.set(match result {
                Ok(Verdict::Ok) => Check::Ok,
                Ok(Verdict::Mismatch { got }) => Check::Mismatch(got),
                Ok(Verdict::Unknown) => Check::None,
                Err(e) => Check::Failed(e),
            });
        });
    };
    let checking = move || matches!(check.get(), Check::Running(_));
    view! {
        <li class="stored-model" data-complete=meta.complete.to_string() class:in-use=in_use>
            <div class="model-info">
                <span class="model-name" title=meta.name.clone()>{meta.name.clone()}</span>
                <span class="model-meta">
                    {status}
                    <Show when=move || in_use.get()>
                        " · " <span class="in-use-tag">"loaded"</span>
                    </Show>
                </span>
            </div>
            <div class="row-actions">
                <Show when=move || can_load && !in_use.get()>
                    <button class="btn" on:click=load.clone() disabled=busy>
                        {if meta.complete { "Load" } else { "Resume" }}
                    </button>
                </Show>
                <Show when=move || can_verify>
                    <button class="btn btn-ghost verify" on:click=verify.clone()
                        disabled=move || busy() || checking()
                        title="Read the stored copy again and compare its sha256 with the published one">
                        "Verify"
                    </button>
                </Show>
                <button class="btn btn-ghost" on:click=delete.clone() disabled=busy
                    aria-label=format!("Delete {}", meta.name)>
                    "Delete"
                </button>
            </div>
            {move || match check.get() {
                Check::None => None,
                Check::Running(f) => Some(view! {
                    <p class="muted verify-result" data-verify="running">
                        {format!("Verifying… {:.0}%", f * 100.0)}
                    </p>
                }.into_any()),
                Check::Ok => Some(view! {
                    <p class="muted verify-result" data-verify="ok">"sha256 ok: the stored copy is intact."</p>
                }.into_any()),
                Check::Mismatch(got) => Some(view! {
                    <p class="error verify-result" data-verify="mismatch" role="alert">
                        {format!("sha256 mismatch (got {}…): the stored copy is damaged. ", &got[..got.len().min(16)])}
                        <button class="btn-link" on:click=delete.clone()>"Delete it"</button>
                    </p>
                }.into_any()),
                Check::Failed(e) => Some(view! {
                    <p class="error verify-result" data-verify="failed" role="alert">
                        {format!("Could not verify: {e}")}
                    </p>
                }.into_any()),
            }}
        </li>
    }
}
