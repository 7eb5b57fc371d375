//! Compute backends: they run the model on their own KV cache and nothing else. `cpu` is the
//! reference and the fallback; `webgpu` runs our WGSL. Generation (prompt checks, sampling,
//! stopping, streaming, prefix reuse, context shift) is written once above them, in
//! the session (`crate::engine`, which imports the backends, never the reverse).
//!
//! ```text
//! Backend::forward(tokens, want)   tokens at cache positions len.. → Nothing | Token | Logits
//! Backend::truncate(n)             forget positions n.. (they are overwritten later)
//! Backend::shift(keep, discard)    drop positions keep..keep+discard, move the rest down and
//!                                  rotate their keys by −discard (RoPE is a rotation)
//! ```

use serde::{Deserialize, Serialize};

use crate::error::Result;

pub mod cpu;
/// Native, and the browser's threaded build (wasm32 + atomics: shared memory).
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub mod pool;
#[cfg(feature = "webgpu")]
pub mod webgpu;

/// How to pick and configure the GPU (plain settings; used by the `webgpu` backend).
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Upper bound on the bytes of one storage binding, below the adapter's own
    /// `max_storage_buffer_binding_size` (tests use a small value to exercise tensor splitting).
    pub max_binding_bytes: Option<u64>,
    /// Tokens per batch on the GPU during prefill (default 64; bounded by the binding limit).
    pub max_batch: Option<usize>,
    /// Time every forward pass on the GPU with timestamp queries, where the adapter has them
    /// (benchmarks: GPU time per token apart from submit, readback and host overhead).
    pub timestamps: bool,
    /// Keep the KV cache in f16 where the adapter has `shader-f16` (half the cache's memory and
    /// the bytes attention reads; arithmetic stays f32). Off: the portable f32 cache.
    pub f16_kv: bool,
}

/// What a forward pass should return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Only fill the cache (the first chunks of a long prompt).
    Nothing,
    /// The greedy next token after the last position (the GPU reads back 4 bytes).
    Argmax,
    /// The logits of the last position, (n_vocab).
    Last,
    /// The logits of every position, (n_tokens, n_vocab).
    All,
}

/// What a forward pass returned, as asked by [`Want`].
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Nothing,
    Token(u32),
    Logits(Vec<f32>),
}

impl Output {
    /// The logits (empty for `Nothing` / `Token`).
    pub fn into_logits(self) -> Vec<f32> {
        match self {
            Output::Logits(l) => l,
            _ => Vec::new(),
        }
    }
}

/// A model with a KV cache of `n_ctx` positions, of which `len` are filled.
#[allow(async_fn_in_trait)] // used through `AnyBackend`, never as `dyn`
pub trait Backend {
    fn kind(&self) -> BackendKind;
    /// Positions in the cache.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Positions the cache holds at most.
    fn n_ctx(&self) -> usize;
    /// Keep positions `..n` (no-op if `n >= len`).
    fn truncate(&mut self, n: usize);
    /// Evaluate `tokens` at positions `len..len + tokens.len()`, appending their keys and values.
    async fn forward(&mut self, tokens: &[u32], want: Want) -> Result<Output>;
    /// Drop positions `keep..keep + discard`: later positions move down by `discard` and their
    /// keys are rotated by `-discard` positions (llama.cpp's context shift).
    async fn shift(&mut self, keep: usize, discard: usize) -> Result<()>;
}

/// Which engine the user asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendPref {
    /// WebGPU on a hardware adapter; the CPU engine where there is none or only a software
    /// renderer (SwiftShader and lavapipe are far slower than the SIMD CPU engine).
    #[default]
    Auto,
    /// WebGPU on any adapter, software renderers included.
    #[serde(rename = "webgpu")]
    WebGpu,
    /// The CPU engine.
    Cpu,
}

impl BackendPref {
    /// `auto`, `webgpu` or `cpu` (the CLI's `--backend`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "webgpu" => Some(Self::WebGpu),
            "cpu" => Some(Self::Cpu),
            _ => None,
        }
    }
}

/// Which engine runs a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Cpu,
    #[serde(rename = "webgpu")]
    WebGpu,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::WebGpu => "webgpu",
        }
    }
}

/// The engine chosen for a model, and why when it is not the one asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendChoice {
    pub kind: BackendKind,
    /// The GPU adapter (WebGPU only).
    pub adapter: Option<String>,
    /// Why the CPU engine runs instead of WebGPU (no WebGPU, no adapter, a software renderer,
    /// the user's choice, a failure).
    pub fallback: Option<String>,
}

impl BackendChoice {
    pub fn cpu(why: impl Into<String>) -> Self {
        BackendChoice {
            kind: BackendKind::Cpu,
            adapter: None,
            fallback: Some(why.into()),
        }
    }

    pub fn is_gpu(&self) -> bool {
        self.kind == BackendKind::WebGpu
    }
}

/// The backend a session runs on (one per session: the size difference does not matter).
#[allow(clippy::large_enum_variant)]
pub enum AnyBackend {
    Cpu(cpu::CpuSession),
    #[cfg(feature = "webgpu")]
    Gpu(webgpu::GpuSession),
}

macro_rules! each {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            AnyBackend::Cpu($b) => $e,
            #[cfg(feature = "webgpu")]
            AnyBackend::Gpu($b) => $e,
        }
    };
}

impl Backend for AnyBackend {
    fn kind(&self) -> BackendKind {
        each!(self, b => b.kind())
    }
    fn len(&self) -> usize {
        each!(self, b => b.len())
    }
    fn n_ctx(&self) -> usize {
        each!(self, b => b.n_ctx())
    }
    fn truncate(&mut self, n: usize) {
        each!(self, b => b.truncate(n))
    }
    async fn forward(&mut self, tokens: &[u32], want: Want) -> Result<Output> {
        each!(self, b => b.forward(tokens, want).await)
    }
    async fn shift(&mut self, keep: usize, discard: usize) -> Result<()> {
        each!(self, b => b.shift(keep, discard).await)
    }
}

impl AnyBackend {
    /// Bytes of the KV cache.
    pub fn kv_bytes(&self) -> u64 {
        match self {
            AnyBackend::Cpu(c) => c.kv_bytes() as u64,
            #[cfg(feature = "webgpu")]
            AnyBackend::Gpu(g) => g.stats().kv_cache_bytes,
        }
    }

    pub fn cpu(&self) -> Option<&cpu::CpuSession> {
        match self {
            AnyBackend::Cpu(c) => Some(c),
            #[cfg(feature = "webgpu")]
            AnyBackend::Gpu(_) => None,
        }
    }

    #[cfg(feature = "webgpu")]
    pub fn gpu(&self) -> Option<&webgpu::GpuSession> {
        match self {
            AnyBackend::Gpu(g) => Some(g),
            AnyBackend::Cpu(_) => None,
        }
    }

    #[cfg(feature = "webgpu")]
    pub fn gpu_mut(&mut self) -> Option<&mut webgpu::GpuSession> {
        match self {
            AnyBackend::Gpu(g) => Some(g),
            AnyBackend::Cpu(_) => None,
        }
    }
}

/// The checks every backend makes before a forward pass.
pub(crate) fn check_tokens(tokens: &[u32], len: usize, n_ctx: usize, n_vocab: usize) -> Result<()> {
    use crate::error::Error;
    if tokens.is_empty() {
        return Err(Error::Invalid("no tokens to evaluate".into()));
    }
    if len + tokens.len() > n_ctx {
        return Err(Error::Invalid(format!(
            "context is full: {len} + {} tokens exceed the {n_ctx}-token context",
            tokens.len()
        )));
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(Error::Invalid(format!(
            "token id {bad} is outside the vocabulary ({n_vocab} tokens)"
        )));
    }
    Ok(())
}

/// The checks of a context shift: `keep + discard` positions must be in the cache.
pub(crate) fn check_shift(keep: usize, discard: usize, len: usize) -> Result<()> {
    if discard == 0 || keep + discard > len {
        return Err(crate::error::Error::Invalid(format!(
            "cannot shift out positions {keep}..{} of a cache holding {len}",
            keep + discard
        )));
    }
    Ok(())
}
