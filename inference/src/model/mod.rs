//! Transformer models: hyper-parameters per architecture, the weights (still quantized), the KV cache.
//!
//! Supported `general.architecture` values: `llama` (SmolLM2, TinyLlama, Llama 2/3), `qwen2`
//! (QKV biases, NeoX RoPE) and `gemma3` (GeGLU, q/k norms, post-norms, sliding-window layers with
//! their own RoPE base). The forward pass itself lives in a backend (`backend::cpu`).

pub mod hparams;
pub mod kv_cache;
pub mod weights;

pub use hparams::{Arch, HParams};
pub use kv_cache::KvCache;
pub use weights::{Bytes, LayerWeights, QTensor, Weights};
