//! The engine: a [`Session`] is one conversation on one backend — its KV cache and the token ids
//! in it — and generation over it is written once, for every backend.
//!
//! ```text
//! LoadedModel ─ Session::new(&loaded, &SessionOptions)
//! Session::generate(prompt, &GenerateParams, sink).await ─► Generation
//!    1. prefix reuse: keep the longest common prefix of the cache's tokens and `prompt`,
//!       evaluate only the rest (a new turn: its new tokens; Regenerate: one token)
//!    2. context shift (GenerateParams::keep): when the cache is full, keep the first `keep`
//!       tokens, drop the oldest half of the rest and rotate the kept keys (no re-prefill)
//!    3. greedy asks the backend for the argmax only (the GPU reads back 4 bytes), sampling for
//!       the last logits; stop at end-of-generation, max tokens, Stop, or a full context
//! ```
//! The session remembers every token it evaluated (its *history*); after a shift, positions
//! `keep..keep + dropped` of the history are no longer in the cache, and a new request that
//! agrees with the history past them is appended to what the cache holds.

mod generate;
mod snapshot;

pub use generate::{GenerateParams, Generation, Generator, StopReason, TokenSink};
pub use snapshot::KvSnapshot;

use std::rc::Rc;

use crate::backend::cpu::CpuSession;
use crate::backend::{AnyBackend, Backend, BackendKind, Output, Want};
use crate::error::{Error, Result};
use crate::loader::LoadedModel;
use crate::model::Model;
use crate::quant::Activations;

/// Run a future to completion on this thread (native: the CLI, tests, benchmarks).
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

/// Seconds on a monotonic-enough clock, for the speed figures (in the browser: `Date.now()`,
/// since `std::time::Instant` panics on wasm32-unknown-unknown).
pub fn now() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<std::time::Instant> = OnceLock::new();
        T0.get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
    }
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now() / 1000.0
    }
}

/// How to open a session.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// KV cache positions (clamped to the model's training context).
    pub n_ctx: usize,
    /// CPU threads (native; the browser runs one).
    pub threads: usize,
    /// Precision of the CPU matrix products' inputs (the GPU keeps f32).
    pub activations: Activations,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            n_ctx: 2048,
            threads: 1,
            activations: Activations::F32,
        }
    }
}

/// One conversation: a backend with its KV cache, and the tokens evaluated into it.
pub struct Session {
    model: Rc<Model>,
    backend: AnyBackend,
    /// Every token evaluated, in order. Positions `..keep` and `keep + dropped..` of it are in
    /// the cache; the context shift dropped `keep..keep + dropped`.
    history: Vec<u32>,
    /// Leading tokens a context shift never drops (the system prompt / template head).
    keep: usize,
    dropped: usize,
}

/// Length of the longest common prefix.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Session {
    /// A session on the engine `loaded` runs on.
    pub fn new(loaded: &LoadedModel, opts: &SessionOptions) -> Result<Session> {
        #[cfg(feature = "webgpu")]
        if let Some(gm) = &loaded.gpu {
            let gpu = crate::backend::webgpu::GpuSession::new(
                gm.clone(),
                opts.n_ctx,
                &loaded.gpu_options,
            )?;
            return Ok(Self::with_backend(
                loaded.model.clone(),
                AnyBackend::Gpu(gpu),
            ));
        }
        Self::cpu(loaded.model.clone(), opts)
    }

    /// A session on the CPU engine.
    pub fn cpu(model: Rc<Model>, opts: &SessionOptions) -> Result<Session> {
        let mut cpu = CpuSession::new(model.clone(), opts.n_ctx, opts.threads)?;
        cpu.set_activations(opts.activations);
        Ok(Self::with_backend(model, AnyBackend::Cpu(cpu)))
    }

    pub fn with_backend(model: Rc<Model>, backend: AnyBackend) -> Session {
        Session {
            model,
            backend,
            history: Vec::new(),
            keep: 0,
            dropped: 0,
        }
    }

    pub fn model(&self) -> &Rc<Model> {
        &self.model
    }

    pub fn backend(&self) -> &AnyBackend {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut AnyBackend {
        &mut self.backend
    }

    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// Positions in the KV cache.
    pub fn len(&self) -> usize {
        self.backend.len()
    }

    pub fn is_empty(&self) -> bool {
        self.backend.is_empty()
    }

    pub fn n_ctx(&self) -> usize {
        self.backend.n_ctx()
    }

    /// Every token evaluated (see [`Session::dropped`] for those no longer in the cache).
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Tokens of the history that a context shift dropped from the cache (after the first
    /// [`Session::keep`]).
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Forget the conversation (the cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.backend.truncate(0);
        self.history.clear();
        self.dropped = 0;
    }

    /// Keep the first `n` tokens of the history. Where the cache no longer holds them all (a
    /// context shift dropped some), only what precedes the dropped tokens is kept. Returns the
    /// history's new length.
    pub fn truncate(&mut self, n: usize) -> usize {
        let n = n.min(self.history.len());
        let n = if self.dropped > 0 && n < self.keep + self.dropped {
            self.dropped = 0;
            n.min(self.keep)
        } else {
            n
        };
        self.history.truncate(n);
        self.backend.truncate(n - self.dropped);
        n
    }

    /// Evaluate `tokens` after those in the cache (no context shift: an error when they do not
    /// fit).
    pub async fn eval(&mut self, tokens: &[u32], want: Want) -> Result<Output> {
        let out = self.backend.forward(tokens, want).await?;
        self.history.extend_from_slice(tokens);
        Ok(out)
    }

    /// [`Session::eval`] returning logits: of the last token, or of every token (`all`).
    pub async fn logits(&mut self, tokens: &[u32], all: bool) -> Result<Vec<f32>> {
        let want = if all { Want::All } else { Want::Last };
        Ok(self.eval(tokens, want).await?.into_logits())
    }

    /// Drop `discard` tokens from the cache after the first `keep` (llama.cpp's context shift:
    /// the rest move down and their keys are rotated to their new positions).
    pub async fn shift(&mut self, keep: usize, discard: usize) -> Result<()> {
        if self.dropped > 0 && keep != self.keep {
            return Err(Error::Invalid(format!(
                "this session keeps {} tokens; cannot shift with {keep}",
                self.keep
            )));
        }
        self.backend.shift(keep, discard).await?;
        self.keep = keep;
        self.dropped += discard;
        Ok(())
    }

    /// Make room for `pending` more tokens with context shifts (dropping at least half of what
    /// follows `keep`, and more when needed): first from the cache, then from the start of
    /// `pending` itself, whose dropped tokens are recorded in the history without being
    /// evaluated. Returns how many tokens were dropped and the part of `pending` left to
    /// evaluate.
    async fn make_room<'p>(
        &mut self,
        keep: usize,
        pending: &'p [u32],
    ) -> Result<(usize, &'p [u32])> {
        let (len, n_ctx) = (self.len(), self.n_ctx());
        if len + pending.len() <= n_ctx {
            return Ok((0, pending));
        }
        let keep = if self.dropped > 0 { self.keep } else { keep };
        if keep >= n_ctx || len < keep {
            return Err(Error::Invalid(format!(
                "the first {keep} tokens of the conversation (the system prompt) do not leave room \
                 in the {n_ctx}-token context; shorten the system prompt or raise the context size"
            )));
        }
        let excess = len + pending.len() - n_ctx;
        let after_keep = len + pending.len() - keep;
        let discard = excess.max(after_keep / 2);
        let from_cache = discard.min(len - keep);
        if from_cache > 0 {
            self.shift(keep, from_cache).await?;
        }
        let from_pending = discard - from_cache;
        self.keep = keep;
        self.history.extend_from_slice(&pending[..from_pending]);
        self.dropped += from_pending;
        Ok((discard, &pending[from_pending..]))
    }

    /// Evaluate `prompt` for generation, reusing the longest prefix the cache already holds:
    /// returns what the backend answered for its last token, and the counts of the turn.
    async fn prefill(
        &mut self,
        prompt: &[u32],
        keep: Option<usize>,
        want: Want,
    ) -> Result<(Output, TurnCounts)> {
        if prompt.is_empty() {
            return Err(Error::Invalid("the prompt is empty".into()));
        }
        // The cache must end before the prompt's last token: its logits choose the next one.
        let lcp = common_prefix(&self.history, prompt).min(prompt.len() - 1);
        let kept = self.truncate(lcp);
        let reused = self.len();
        let (shifted, rest) = match keep {
            Some(keep) => {
                self.make_room(keep.min(self.n_ctx() / 2), &prompt[kept..])
                    .await?
            }
            None => {
                let room = self.n_ctx() - self.len();
                if prompt.len() - kept > room {
                    return Err(Error::Invalid(format!(
                        "the prompt has {} tokens but only {room} fit in the {}-token context",
                        prompt.len() - kept,
                        self.n_ctx()
                    )));
                }
                (0, &prompt[kept..])
            }
        };
        let out = self.eval(rest, want).await?;
        let counts = TurnCounts {
            reused,
            evaluated: rest.len(),
            shifted,
        };
        Ok((out, counts))
    }
}

/// What a turn's prompt cost: cache positions reused, tokens evaluated, tokens shifted out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnCounts {
    pub reused: usize,
    pub evaluated: usize,
    pub shifted: usize,
}
