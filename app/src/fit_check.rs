//! "Will it fit?" in the page, before a download: the model's GGUF header by HTTP Range requests
//! (1 MB, then 4, 16, 64 MB until the header is complete — never the weights), this browser's
//! limits (the WebGPU adapter's `maxBufferSize`, `navigator.deviceMemory`, the storage left), and
//! the verdict of `chord_app::fit`.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use chord_app::fit::{judge, Limits, Needs, Report};
use inference::gguf::GgufHeader;
use leptos::prelude::*;

use crate::engine_link::js_err;
use crate::model_store;
use crate::state::AppState;

/// The most header bytes asked for (the engine refuses larger headers too).
const MAX_HEADER_BYTES: u64 = 64 << 20;

fn get(o: &JsValue, k: &str) -> Option<JsValue> {
    js_sys::Reflect::get(o, &JsValue::from_str(k))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// Bytes `0..len` of `url` (fewer at its end) and the file's total size.
async fn head_bytes(url: &str, len: u64) -> Result<(Vec<u8>, u64), String> {
    let window = web_sys::window().ok_or("no window")?;
    let init = web_sys::RequestInit::new();
    let headers = web_sys::Headers::new().map_err(js_err)?;
    headers
        .set("Range", &format!("bytes=0-{}", len - 1))
        .map_err(js_err)?;
    init.set_headers(&headers);
    init.set_cache(web_sys::RequestCache::NoStore);
    let ctrl = web_sys::AbortController::new().map_err(js_err)?;
    init.set_signal(Some(&ctrl.signal()));
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(js_err)?
        .dyn_into()
        .map_err(js_err)?;
    let header = |k: &str| resp.headers().get(k).ok().flatten();
    let total = match resp.status() {
        206 => header("content-range")
            .and_then(|v| chord_app::cache::parse_content_range(&v))
            .map(|(_, _, total)| total)
            .ok_or("the server's Content-Range is missing")?,
        200 => header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or("the server gives no size")?,
        s => return Err(format!("HTTP {s}")),
    };
    // A server that ignores Range sends the whole file: read only what was asked for.
    let body = resp.body().ok_or("no body")?;
    let reader: web_sys::ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| "the body cannot be read")?;
    let mut out = Vec::new();
    while (out.len() as u64) < len {
        let chunk = JsFuture::from(reader.read()).await.map_err(js_err)?;
        if get(&chunk, "done").and_then(|d| d.as_bool()) == Some(true) {
            break;
        }
        if let Some(v) = get(&chunk, "value") {
            out.extend_from_slice(&Uint8Array::new(&v).to_vec());
        }
    }
    ctrl.abort();
    out.truncate(len as usize);
    Ok((out, total))
}

/// The hardware WebGPU adapter's `maxBufferSize` (`None`: no WebGPU or a software renderer).
async fn gpu_max_buffer(state: AppState) -> Option<u64> {
    let hardware = matches!(
        state.adapter.get_untracked(),
        Some(crate::platform::AdapterProbe::Hardware(_))
    );
    if !hardware {
        return None;
    }
    let gpu = get(&web_sys::window()?.navigator(), "gpu")?;
    let request = get(&gpu, "requestAdapter")?
        .dyn_into::<js_sys::Function>()
        .ok()?;
    let promise = request
        .call0(&gpu)
        .ok()?
        .dyn_into::<js_sys::Promise>()
        .ok()?;
    let adapter = JsFuture::from(promise).await.ok()?;
    get(&get(&adapter, "limits")?, "maxBufferSize")?
        .as_f64()
        .map(|v| v as u64)
}

/// What the model at `url` needs against what this browser has.
pub async fn check_url(state: AppState, name: &str, url: &str) -> Result<Report, String> {
    let mut want = 1u64 << 20;
    let mut needs = loop {
        let (bytes, total) = head_bytes(url, want).await?;
        match GgufHeader::parse(&bytes, total) {
            Ok(Some(header)) => {
                let n_ctx = state
                    .settings
                    .with_untracked(|s| s.clone().sanitized().n_ctx);
                break Needs::from_header(&header, total, u64::from(n_ctx))?;
            }
            Ok(None) if (bytes.len() as u64) < total && want < MAX_HEADER_BYTES => want *= 4,
            Ok(None) => return Err(format!("{name}: its header does not end within 64 MB")),
            Err(e) => return Err(format!("{name} is not a usable GGUF model: {e}")),
        }
    };
    // A split model: the first part's header lists only its own tensors; the other parts are
    // (almost) all tensor bytes.
    if let Some(urls) = chord_app::cache::split_part_urls(url) {
        for u in &urls[1..] {
            let (_, size) = head_bytes(u, 1).await?;
            needs.file = needs.file.saturating_add(size);
            needs.weights = needs.weights.saturating_add(size);
        }
    }
    let device_memory = web_sys::window()
        .and_then(|w| get(&w.navigator(), "deviceMemory"))
        .and_then(|v| v.as_f64())
        .map(|gb| (gb * (1u64 << 30) as f64) as u64);
    let storage_free = model_store::estimate()
        .await
        .map(|(usage, quota)| (quota - usage).max(0.0) as u64);
    let already_stored = model_store::get(url)
        .await
        .ok()
        .flatten()
        .map_or(0, |m| m.stored_bytes());
    let limits = Limits {
        gpu_max_buffer: gpu_max_buffer(state).await,
        device_memory,
        storage_free,
        already_stored,
    };
    Ok(judge(name, &needs, &limits))
}
