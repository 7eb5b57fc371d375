use leptos::prelude::*;

use chord_app::protocol::BackendPref;
use chord_app::settings::Settings;

fn backend_key(b: BackendPref) -> &'static str {
    match b {
        BackendPref::Auto => "auto",
        BackendPref::WebGpu => "webgpu",
        BackendPref::Cpu => "cpu",
    }
}

use crate::state::use_state;

/// Sampling settings (saved in this browser).
#[component]
pub fn SettingsPanel() -> impl IntoView {
    let state = use_state();
    let s = state.settings;
    // Parse a form value and store it, sanitized; an unparsable value is ignored.
    let num = move |f: fn(&mut Settings, f64)| {
        move |ev: leptos::ev::Event| {
            if let Ok(v) = event_target_value(&ev).trim().parse::<f64>() {
                s.update(|st| {
                    f(st, v);
                    *st = st.clone().sanitized();
                });
            }
        }
    };
    view! {
        <details class="card settings">
            <summary>"Settings"</summary>
            <div class="settings-grid">
                <label>
                    "Temperature"
                    <input type="number" name="temperature" min="0" max="2" step="0.05"
                        prop:value=move || s.with(|s| s.temperature.to_string())
                        on:change=num(|s, v| s.temperature = v as f32)/>
                    <span class="help">"0 = always the likeliest word; higher = more varied"</span>
                </label>
                <label>
                    "Top-p"
                    <input type="number" name="top_p" min="0" max="1" step="0.01"
                        prop:value=move || s.with(|s| s.top_p.to_string())
                        on:change=num(|s, v| s.top_p = v as f32)/>
                    <span class="help">"Sample only from the words making up this much probability"</span>
                </label>
                <label>
                    "Top-k"
                    <input type="number" name="top_k" min="0" max="1000" step="1"
                        prop:value=move || s.with(|s| s.top_k.to_string())
                        on:change=num(|s, v| s.top_k = v.max(0.0) as u32)/>
                    <span class="help">"Sample only from the k likeliest words (0 = all)"</span>
                </label>
                <label>
                    "Max tokens"
                    <input type="number" name="max_tokens" min="1" max="4096" step="1"
                        prop:value=move || s.with(|s| s.max_tokens.to_string())
                        on:change=num(|s, v| s.max_tokens = v.max(1.0) as u32)/>
                    <span class="help">"The longest reply, in tokens"</span>
                </label>
                <label>
                    "Context size"
                    <input type="number" name="n_ctx" min="256" max="32768" step="256"
                        prop:value=move || s.with(|s| s.n_ctx.to_string())
                        on:change=num(|s, v| s.n_ctx = v.max(0.0) as u32)/>
                    <span class="help">"Tokens the model sees (conversation + reply); more uses more memory"</span>
                </label>
                <label class="wide">
                    "Engine (applies to the next model load)"
                    <select name="backend"
                        prop:value=move || s.with(|s| backend_key(s.backend))
                        on:change=move |ev| {
                            let v = match event_target_value(&ev).as_str() {
                                "webgpu" => BackendPref::WebGpu,
                                "cpu" => BackendPref::Cpu,
                                _ => BackendPref::Auto,
                            };
                            s.update(|st| st.backend = v);
                        }>
                        <option value="auto">"Automatic: WebGPU on a real GPU, else the CPU"</option>
                        <option value="webgpu">"WebGPU, even on a software renderer"</option>
                        <option value="cpu">"CPU (SIMD wasm)"</option>
                    </select>
                </label>
                <label class="wide">
                    "CPU threads (applies after a reload)"
                    <select name="threads"
                        prop:value=move || s.with(|s| s.threads.to_string())
                        on:change=move |ev| {
                            let v = event_target_value(&ev).parse::<u32>().unwrap_or(0);
                            s.update(|st| st.threads = v);
                        }>
                        <option value="0">"Automatic: every core (at most 8) where the page allows threads"</option>
                        <option value="1">"1"</option>
                        <option value="2">"2"</option>
                        <option value="4">"4"</option>
                        <option value="8">"8"</option>
                    </select>
                    <span class="help">"The CPU engine uses several cores only on a cross-origin isolated page; the badge says how many run"</span>
                </label>
                <label class="wide check">
                    <input type="checkbox" name="raw"
                        prop:checked=move || s.with(|s| s.raw)
                        on:change=move |ev| s.update(|st| st.raw = event_target_checked(&ev))/>
                    "Completion mode (no chat template: the message is the raw prompt)"
                </label>
                <label class="wide check">
                    <input type="checkbox" name="reuse_cache"
                        prop:checked=move || s.with(|s| s.reuse_cache)
                        on:change=move |ev| s.update(|st| st.reuse_cache = event_target_checked(&ev))/>
                    "Keep each conversation in the model's cache (a reply evaluates only the new \
                     message; off: recompute the whole conversation every time)"
                </label>
                <label class="wide">
                    "System prompt"
                    <textarea name="system_prompt" rows="2"
                        prop:value=move || s.with(|s| s.system_prompt.clone())
                        on:change=move |ev| s.update(|st| st.system_prompt = event_target_value(&ev))
                    ></textarea>
                </label>
                <button type="button" class="btn btn-ghost" on:click=move |_| s.set(Settings::default())>
                    "Reset to defaults"
                </button>
            </div>
        </details>
    }
}
