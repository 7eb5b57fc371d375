//! The engine's dedicated Web Worker: receives the model bytes and chat requests from the UI,
//! runs the model, streams tokens back (see `chord_app::protocol`). The UI thread never runs the
//! model. Generation yields to this worker's event loop after every token, so `Stop` (and any
//! other message) is handled mid-reply.
//!
//! Backend: after the bytes are parsed, the weights are uploaded to WebGPU (still quantized) when
//! the browser has it and the user did not force the CPU; any failure (no `navigator.gpu`, no
//! adapter, a shader error, a lost device, also mid-reply) falls back to the CPU engine, and the
//! reason is reported to the UI.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use chord_app::protocol::{BackendInfo, BackendPref, ChatTurn, FromWorker, GenParams, ToWorker};
use inference::backend::webgpu::{GpuDevice, GpuModel, GpuOptions, GpuSession};
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
    loader: ModelLoader,
    header_ok: bool,
    backend: BackendPref,
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
        load_chunk(state, &bytes);
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
            s.loading = Some(Loading {
                name,
                loader: ModelLoader::new(size),
                header_ok: false,
                backend,
            });
        }
        ToWorker::LoadCancel => {
            state.borrow_mut().loading = None;
        }
        ToWorker::LoadEnd => {
            let Some(l) = state.borrow_mut().loading.take() else {
                return; // an earlier error already dropped it and was reported
            };
            let seq = state.borrow().load_seq;
            match l.loader.finish() {
                Ok(model) => {
                    let model = Rc::new(model);
                    let name = if model.name.is_empty() {
                        l.name
                    } else {
                        model.name.clone()
                    };
                    let state = state.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        let (gpu, backend) = open_gpu(&model, l.backend).await;
                        let mut s = state.borrow_mut();
                        if s.load_seq != seq {
                            return; // another model was started meanwhile
                        }
                        s.model = Some(model.clone());
                        s.gpu = gpu.map(Rc::new);
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
                Err(e) => post_error(format!("Cannot load {}: {e}", l.name)),
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

fn load_chunk(state: &Rc<RefCell<State>>, bytes: &[u8]) {
    let mut s = state.borrow_mut();
    let Some(l) = s.loading.as_mut() else {
        return; // cancelled, or failed earlier (already reported)
    };
    match l.loader.push(bytes) {
        Ok(()) => {
            if l.loader.preflight().is_some() {
                l.header_ok = true;
            }
            let (done, total) = l.loader.progress();
            post(&FromWorker::Progress {
                done,
                total,
                header_ok: l.header_ok,
            });
        }
        Err(e) => {
            let name = l.name.clone();
            s.loading = None;
            drop(s);
            post_error(format!("Cannot load {name}: {e}"));
        }
    }
}

/// Upload the model to WebGPU unless the user chose the CPU; on any failure say why.
async fn open_gpu(model: &Model, pref: BackendPref) -> (Option<GpuModel>, BackendInfo) {
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
    match GpuModel::with_device(dev, &model.hp, &model.weights, model.tensor_bytes).await {
        Ok(gpu) => {
            let info = BackendInfo {
                kind: "webgpu".into(),
                adapter: Some(gpu.adapter_info()),
                fallback: None,
            };
            (Some(gpu), info)
        }
        Err(e) => (None, cpu(format!("WebGPU failed: {e}"))),
    }
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
