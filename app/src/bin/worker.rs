//! The engine's dedicated Web Worker: receives the model bytes and chat requests from the UI,
//! runs the model, streams tokens back (see `chord_app::protocol`). The UI thread never runs the
//! model. Generation yields to this worker's event loop after every token, so `Stop` (and any
//! other message) is handled mid-reply.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use chord_app::protocol::{ChatTurn, FromWorker, GenParams, ToWorker};
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
}

#[derive(Default)]
struct State {
    loading: Option<Loading>,
    model: Option<Rc<Model>>,
    generating: bool,
    stop: Rc<Cell<bool>>,
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
        ToWorker::LoadStart { size, name } => {
            let mut s = state.borrow_mut();
            if s.generating {
                s.stop.set(true);
            }
            // Free the previous model before the next one arrives.
            s.model = None;
            s.loading = Some(Loading {
                name,
                loader: ModelLoader::new(size),
                header_ok: false,
            });
        }
        ToWorker::LoadCancel => {
            state.borrow_mut().loading = None;
        }
        ToWorker::LoadEnd => {
            let Some(l) = state.borrow_mut().loading.take() else {
                return; // an earlier error already dropped it and was reported
            };
            match l.loader.finish() {
                Ok(model) => {
                    post(&FromWorker::Loaded {
                        name: if model.name.is_empty() {
                            l.name
                        } else {
                            model.name.clone()
                        },
                        arch: model.hp.arch.name().to_owned(),
                        n_params: model.n_params,
                        n_ctx: model.hp.n_ctx_train as u64,
                    });
                    state.borrow_mut().model = Some(Rc::new(model));
                }
                Err(e) => post_error(format!("Cannot load {}: {e}", l.name)),
            }
        }
        ToWorker::Generate { messages, params } => {
            let (model, stop) = {
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
                (model, s.stop.clone())
            };
            let state = state.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = generate(&model, &messages, &params, &stop).await;
                state.borrow_mut().generating = false;
                match result {
                    Ok(done) => post(&done),
                    Err(e) => post_error(e.to_string()),
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

/// Run one reply, posting `Token`s as they come; returns the `Done` message.
async fn generate(
    model: &Model,
    messages: &[ChatTurn],
    params: &GenParams,
    stop: &Cell<bool>,
) -> inference::Result<FromWorker> {
    let text = if params.raw {
        messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default()
    } else {
        let msgs: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
            .collect();
        model.chat.render(&msgs, true)?
    };
    let prompt = model.tokenizer.encode(&text, true);
    let max_tokens = params.max_tokens.max(1) as usize;
    let n_ctx = (prompt.len() + max_tokens).min(model.hp.n_ctx_train);
    let mut session = Session::new(model, n_ctx, 1)?;
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
    let t0 = now_ms();
    let mut gen = session.start(&prompt, &gp)?;
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
