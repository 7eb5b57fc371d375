//! The engine's dedicated Web Worker: receives the model bytes and chat requests from the UI,
//! runs the model, streams tokens back (see `chord_app::protocol`). The UI thread never runs the
//! model. Generation yields to this worker's event loop after every token, so `Stop` (and any
//! other message) is handled mid-reply.
//!
//! Backend: at `LoadStart` the worker decides between WebGPU and the CPU engine (the user's
//! choice; *Automatic* skips software adapters). On WebGPU each weight matrix is uploaded, still
//! quantized, the moment its bytes have arrived, and never kept in wasm memory: chunks that come
//! while the device opens wait in a queue. Any failure before the upload (no `navigator.gpu`, no
//! adapter) falls back to the CPU engine, and the reason is reported to the UI; a GPU failure after
//! it (shader error, device lost) asks for a reload, since the weights are on the GPU only.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use chord_app::protocol::{BackendInfo, BackendPref, ChatTurn, FromWorker, GenParams, ToWorker};
use inference::backend::webgpu::{GpuDevice, GpuModel, GpuOptions, GpuSession, GpuUploader};
use inference::chat::ChatMessage;
use inference::engine::{GenerateParams, Model, ModelLoader, Session};
use inference::sampler::SamplerParams;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

/// A model being received.
struct Loading {
    name: String,
    size: u64,
    /// `None` until the backend is decided (the GPU device is open or refused).
    loader: Option<ModelLoader>,
    /// Chunks that arrived before that.
    queue: Vec<Vec<u8>>,
    /// `LoadEnd` arrived while chunks were still queued.
    ended: bool,
    header_ok: bool,
    /// The uploader the loader's sink feeds (WebGPU only).
    uploader: Option<Rc<RefCell<GpuUploader>>>,
    backend: BackendInfo,
}

#[derive(Default)]
struct State {
    loading: Option<Loading>,
    model: Option<Rc<Model>>,
    /// The same model on the GPU, when WebGPU works.
    gpu: Option<Rc<GpuModel>>,
    backend: BackendInfo,
    generating: bool,
    stop: Rc<Cell<bool>>,
    /// Bumped by every load: a GPU upload that finishes after a newer load started is dropped.
    load_seq: u64,
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(msg: &FromWorker) {
    let _ = scope().post_message(&JsValue::from_str(&msg.to_json()));
}

fn post_error(message: impl Into<String>) {
    post(&FromWorker::Error {
        message: message.into(),
    });
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn main() {
    console_error_panic_hook::set_once();
    let state = Rc::new(RefCell::new(State::default()));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        handle(&state, ev.data());
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&FromWorker::Ready);
}

fn handle(state: &Rc<RefCell<State>>, data: JsValue) {
    if let Some(text) = data.as_string() {
        match serde_json::from_str::<ToWorker>(&text) {
            Ok(msg) => handle_message(state, msg),
            Err(e) => post_error(format!("worker: bad message: {e}")),
        }
    } else if data.is_instance_of::<js_sys::ArrayBuffer>()
        || data.is_instance_of::<js_sys::Uint8Array>()
    {
        let bytes = js_sys::Uint8Array::new(&data).to_vec();
        load_chunk(state, bytes);
    } else {
        post_error("worker: unexpected message");
    }
}

fn handle_message(state: &Rc<RefCell<State>>, msg: ToWorker) {
    match msg {
        ToWorker::LoadStart {
            size,
            name,
            backend,
        } => {
            let mut s = state.borrow_mut();
            if s.generating {
                s.stop.set(true);
            }
            // Free the previous model before the next one arrives.
            s.model = None;
            s.gpu = None;
            s.load_seq += 1;
            let seq = s.load_seq;
            s.loading = Some(Loading {
                name,
                size,
                loader: None,
                queue: Vec::new(),
                ended: false,
                header_ok: false,
                uploader: None,
                backend: BackendInfo::default(),
            });
            drop(s);
            let state = state.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let (dev, info) = open_device(backend).await;
                start_loader(&state, seq, dev, info);
            });
        }
        ToWorker::LoadCancel => {
            state.borrow_mut().loading = None;
        }
        ToWorker::LoadEnd => {
            let ready = {
                let mut s = state.borrow_mut();
                match s.loading.as_mut() {
                    None => return, // an earlier error already dropped it and was reported
                    Some(l) if l.loader.is_none() => {
                        l.ended = true; // finish once the queue is drained
                        false
                    }
                    Some(_) => true,
                }
            };
            if ready {
                finish_load(state);
            }
        }
        ToWorker::Generate { messages, params } => {
            let (model, gpu, stop) = {
                let mut s = state.borrow_mut();
                let Some(model) = s.model.clone() else {
                    drop(s);
                    post_error("No model is loaded yet.");
                    return;
                };
                if s.generating {
                    drop(s);
                    post_error("A reply is already being generated.");
                    return;
                }
                s.generating = true;
                s.stop.set(false);
                (model, s.gpu.clone(), s.stop.clone())
            };
            let state = state.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = reply(&state, &model, gpu, &messages, &params, &stop).await;
                state.borrow_mut().generating = false;
                match result {
                    Ok(done) => post(&done),
                    Err(e) => post_error(e),
                }
            });
        }
        ToWorker::Stop => state.borrow().stop.set(true),
    }
}

fn load_chunk(state: &Rc<RefCell<State>>, bytes: Vec<u8>) {
    let mut s = state.borrow_mut();
    let Some(l) = s.loading.as_mut() else {
        return; // cancelled, or failed earlier (already reported)
    };
    if l.loader.is_none() {
        l.queue.push(bytes);
        return;
    }
    if let Err(e) = push_chunk(l, &bytes) {
        let name = l.name.clone();
        s.loading = None;
        drop(s);
        post_error(format!("Cannot load {name}: {e}"));
    }
}

/// Feed one chunk to the loader (tensors complete in it are uploaded by the sink) and report.
fn push_chunk(l: &mut Loading, bytes: &[u8]) -> inference::Result<()> {
    let Some(loader) = l.loader.as_mut() else {
        return Ok(());
    };
    loader.push(bytes)?;
    if loader.preflight().is_some() {
        l.header_ok = true;
    }
    let (done, total) = loader.progress();
    post(&FromWorker::Progress {
        done,
        total,
        header_ok: l.header_ok,
    });
    Ok(())
}

/// The backend is decided: make the loader (uploading to `dev` if given) and drain the queue.
fn start_loader(state: &Rc<RefCell<State>>, seq: u64, dev: Option<GpuDevice>, info: BackendInfo) {
    let mut s = state.borrow_mut();
    if s.load_seq != seq {
        return; // another load (or a cancel) came meanwhile
    }
    let Some(l) = s.loading.as_mut() else {
        return;
    };
    l.backend = info;
    l.loader = Some(match dev {
        Some(dev) => {
            let up = Rc::new(RefCell::new(GpuUploader::new(dev)));
            l.uploader = Some(up.clone());
            ModelLoader::with_sink(l.size, Box::new(move |t, d| up.borrow_mut().take(t, d)))
        }
        None => ModelLoader::new(l.size),
    });
    for chunk in std::mem::take(&mut l.queue) {
        if let Err(e) = push_chunk(l, &chunk) {
            let name = l.name.clone();
            s.loading = None;
            drop(s);
            post_error(format!("Cannot load {name}: {e}"));
            return;
        }
    }
    let ended = l.ended;
    drop(s);
    if ended {
        finish_load(state);
    }
}

/// Every byte is in: build the model (and the GPU model from the uploaded matrices).
fn finish_load(state: &Rc<RefCell<State>>) {
    let (l, seq) = {
        let mut s = state.borrow_mut();
        let Some(l) = s.loading.take() else { return };
        (l, s.load_seq)
    };
    let Some(loader) = l.loader else { return };
    let model = match loader.finish() {
        Ok(m) => Rc::new(m),
        Err(e) => {
            post_error(format!("Cannot load {}: {e}", l.name));
            return;
        }
    };
    let name = if model.name.is_empty() {
        l.name.clone()
    } else {
        model.name.clone()
    };
    // The loader (and with it the sink's handle) is gone: the uploader is ours alone now.
    let uploader = l
        .uploader
        .and_then(|u| Rc::try_unwrap(u).ok())
        .map(RefCell::into_inner);
    let state = state.clone();
    let backend = l.backend;
    wasm_bindgen_futures::spawn_local(async move {
        let gpu = match uploader {
            Some(up) => match GpuModel::from_uploader(up, &model).await {
                Ok(g) => Some(Rc::new(g)),
                Err(e) => {
                    post_error(format!(
                        "WebGPU failed while preparing {name}: {e}. Choose the CPU engine in \
                         Settings and load the model again."
                    ));
                    return;
                }
            },
            None => None,
        };
        let mut s = state.borrow_mut();
        if s.load_seq != seq {
            return; // another model was started meanwhile
        }
        s.model = Some(model.clone());
        s.gpu = gpu;
        s.backend = backend.clone();
        drop(s);
        post(&FromWorker::Loaded {
            name,
            arch: model.hp.arch.name().to_owned(),
            n_params: model.n_params,
            n_ctx: model.hp.n_ctx_train as u64,
            backend,
        });
    });
}

/// Open the GPU unless the user chose the CPU (or, on *Automatic*, the adapter is software);
/// without a device, say why the CPU engine runs.
async fn open_device(pref: BackendPref) -> (Option<GpuDevice>, BackendInfo) {
    let cpu = |why: String| BackendInfo {
        kind: "cpu".into(),
        adapter: None,
        fallback: Some(why),
    };
    if pref == BackendPref::Cpu {
        return (None, cpu("the CPU engine was chosen in Settings".into()));
    }
    let has_gpu = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("navigator"))
        .and_then(|n| js_sys::Reflect::get(&n, &JsValue::from_str("gpu")))
        .is_ok_and(|g| !g.is_undefined() && !g.is_null());
    if !has_gpu {
        return (
            None,
            cpu("this browser has no WebGPU (navigator.gpu is missing)".into()),
        );
    }
    let dev = match GpuDevice::new(&GpuOptions::default()).await {
        Ok(dev) => dev,
        Err(e) => return (None, cpu(format!("WebGPU failed: {e}"))),
    };
    if pref == BackendPref::Auto && dev.is_software() {
        return (
            None,
            cpu(format!(
                "the only WebGPU adapter is a software renderer ({}), slower than the CPU engine; \
                 choose \"WebGPU\" in Settings to use it anyway",
                dev.adapter_info()
            )),
        );
    }
    let info = BackendInfo {
        kind: "webgpu".into(),
        adapter: Some(dev.adapter_info()),
        fallback: None,
    };
    (Some(dev), info)
}

/// The prompt for `messages`, leaving out the oldest turns (never the system prompt or the last
/// message) until it leaves room for a reply in `n_ctx`. Returns the tokens and how many turns
/// were left out.
fn build_prompt(
    model: &Model,
    messages: &[ChatTurn],
    params: &GenParams,
    n_ctx: usize,
) -> Result<(Vec<u32>, u32), String> {
    if params.raw {
        let text = messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default();
        return Ok((model.tokenizer.encode(&text, true), 0));
    }
    // Room kept for the reply: up to max_tokens, at most half the context.
    let room = (params.max_tokens as usize).clamp(1, (n_ctx / 2).max(1));
    let mut turns: Vec<&ChatTurn> = messages.iter().collect();
    let mut trimmed = 0u32;
    loop {
        let msgs: Vec<ChatMessage> = turns
            .iter()
            .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
            .collect();
        let text = model.chat.render(&msgs, true).map_err(|e| e.to_string())?;
        let prompt = model.tokenizer.encode(&text, true);
        if prompt.len() + room <= n_ctx {
            return Ok((prompt, trimmed));
        }
        // The oldest turn that is neither the system prompt nor the last message.
        match turns
            .iter()
            .enumerate()
            .position(|(i, m)| m.role != "system" && i + 1 < turns.len())
        {
            Some(i) => {
                turns.remove(i);
                trimmed += 1;
            }
            None => {
                return Err(format!(
                    "The message is {} tokens long and does not fit the {n_ctx}-token context \
                     with room for a reply. Shorten it, or raise the context size in Settings.",
                    prompt.len()
                ))
            }
        }
    }
}

/// Run one reply, posting `Token`s as they come; returns the `Done` message.
async fn reply(
    state: &Rc<RefCell<State>>,
    model: &Model,
    gpu: Option<Rc<GpuModel>>,
    messages: &[ChatTurn],
    params: &GenParams,
    stop: &Cell<bool>,
) -> Result<FromWorker, String> {
    let n_ctx_max = match params.n_ctx {
        0 => 2048,
        n => n as usize,
    }
    .min(model.hp.n_ctx_train);
    let (prompt, trimmed) = build_prompt(model, messages, params, n_ctx_max)?;
    let max_tokens = params.max_tokens.max(1) as usize;
    let n_ctx = (prompt.len() + max_tokens).min(n_ctx_max);
    let gp = GenerateParams {
        max_tokens,
        sampler: SamplerParams {
            temperature: params.temperature,
            top_k: params.top_k as usize,
            top_p: params.top_p,
            seed: params.seed,
            ..SamplerParams::default()
        },
        ignore_eos: params.ignore_eos,
    };
    if let Some(gpu) = gpu {
        match generate_gpu(model, &gpu, &prompt, n_ctx, &gp, stop).await {
            Ok(mut done) => {
                if let FromWorker::Done { trimmed: t, .. } = &mut done {
                    *t = trimmed;
                }
                return Ok(done);
            }
            Err((e, sent)) => {
                // The GPU failed (e.g. device lost): the CPU engine takes over from now on.
                let backend = BackendInfo {
                    kind: "cpu".into(),
                    adapter: None,
                    fallback: Some(format!("WebGPU failed during a reply: {e}")),
                };
                {
                    let mut s = state.borrow_mut();
                    s.gpu = None;
                    s.backend = backend.clone();
                }
                post(&FromWorker::Backend { backend });
                if model.offloaded {
                    return Err(format!(
                        "The GPU failed ({e}). The model's weights lived on the GPU only: load \
                         the model again (choose the CPU engine in Settings if this repeats)."
                    ));
                }
                if sent > 0 {
                    return Err(format!("The GPU failed mid-reply ({e}); the CPU engine will answer from now on: regenerate the reply."));
                }
            }
        }
    }
    generate_cpu(model, &prompt, n_ctx, &gp, stop, trimmed)
        .await
        .map_err(|e| e.to_string())
}

async fn generate_gpu(
    model: &Model,
    gpu: &GpuModel,
    prompt: &[u32],
    n_ctx: usize,
    gp: &GenerateParams,
    stop: &Cell<bool>,
) -> Result<FromWorker, (inference::Error, u32)> {
    let mut session = GpuSession::new(gpu, n_ctx, &GpuOptions::default()).map_err(|e| (e, 0))?;
    let mut n = 0u32;
    let g = session
        .generate(&model.tokenizer, prompt, gp, |id, piece| {
            let id = (id != u32::MAX).then_some(id);
            n += u32::from(id.is_some());
            post(&FromWorker::Token {
                id,
                piece: piece.to_owned(),
            });
            !stop.get()
        })
        .await
        .map_err(|e| (e, n))?;
    Ok(FromWorker::Done {
        tokens: g.tokens.len() as u32,
        prompt_tokens: prompt.len() as u32,
        prefill_tok_s: g.prefill_tok_s(),
        decode_tok_s: g.decode_tok_s(),
        stop: g.stop.to_owned(),
        trimmed: 0,
    })
}

async fn generate_cpu(
    model: &Model,
    prompt: &[u32],
    n_ctx: usize,
    gp: &GenerateParams,
    stop: &Cell<bool>,
    trimmed: u32,
) -> inference::Result<FromWorker> {
    let mut session = Session::new(model, n_ctx, 1)?;
    let t0 = now_ms();
    let mut gen = session.start(prompt, gp)?;
    let t1 = now_ms();
    let mut n = 0u32;
    let mut busy_ms = 0.0;
    loop {
        if stop.get() {
            gen.stop();
        }
        let t = now_ms();
        let next = gen.next_token()?;
        busy_ms += now_ms() - t;
        let Some((id, piece)) = next else { break };
        n += 1;
        post(&FromWorker::Token {
            id: Some(id),
            piece,
        });
        yield_now().await;
    }
    let rest = gen.flush();
    if !rest.is_empty() {
        post(&FromWorker::Token {
            id: None,
            piece: rest,
        });
    }
    let rate = |count: f64, ms: f64| if ms > 0.0 { count * 1000.0 / ms } else { 0.0 };
    Ok(FromWorker::Done {
        tokens: n,
        prompt_tokens: prompt.len() as u32,
        prefill_tok_s: rate(prompt.len() as f64, t1 - t0),
        // The first token comes from the prefill logits; decode time is the engine's own time
        // (the yields to the event loop are not counted).
        decode_tok_s: rate(n.saturating_sub(1) as f64, busy_ms),
        stop: gen.stop_reason().unwrap_or("length").to_owned(),
        trimmed,
    })
}

thread_local! {
    static YIELD_CHANNEL: Option<web_sys::MessageChannel> = web_sys::MessageChannel::new().ok();
}

/// Let the worker's event loop run (so queued messages such as `Stop` are handled), without
/// `setTimeout`'s 4 ms clamp: a message to ourselves through a `MessageChannel`.
async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let posted = YIELD_CHANNEL.with(|ch| {
            ch.as_ref().is_some_and(|ch| {
                ch.port1().set_onmessage(Some(&resolve));
                ch.port2().post_message(&JsValue::NULL).is_ok()
            })
        });
        if !posted {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}
