//! Transformer models: hyper-parameters per architecture, the weights (still quantized), the KV cache.
//!
//! Supported `general.architecture` values ([`ARCHS`], each described as data in
//! [`hparams`]): `llama` (SmolLM2, Llama 2/3), `qwen2`, `qwen3`, `gemma2`, `gemma3`, `phi3`
//! (fused QKV and gate+up, LongRoPE), `smollm3`, `granite`, `olmo2`, `starcoder2`, `mistral3`. The forward pass itself lives in a backend (`backend::cpu`,
//! `backend::webgpu`); a [`Model`] is built by [`crate::loader`].

pub mod hparams;
pub mod kv_cache;
pub mod rope;
pub mod weights;

pub use hparams::{Activation, Arch, ArchSpec, HParams, NormKind, ARCHS};
pub use kv_cache::KvCache;
pub use rope::Rope;
pub use weights::{Bytes, LayerWeights, Norm, QTensor, Weights};

use crate::chat::{ChatMessage, ChatTemplate};
use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// A loaded model: hyper-parameters, quantized weights, tokenizer and chat template.
pub struct Model {
    pub hp: HParams,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
    pub chat: ChatTemplate,
    /// `general.name`, or the architecture when absent.
    pub name: String,
    pub file_size: u64,
    pub tensor_bytes: u64,
    pub n_params: u64,
    /// The weight matrices went to a GPU as they streamed in and are not on the host: only a
    /// GPU backend can run this model (see [`crate::loader::ModelLoader::with_sink`]).
    pub offloaded: bool,
    /// Tells this file's weights from another's (a hash of the file size and every tensor's
    /// name, type, shape and first bytes): a saved KV cache is only restored into the model
    /// that computed it.
    pub fingerprint: u64,
}

impl Model {
    /// Render one user message (plus an optional system prompt) with the model's chat template.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> Result<String> {
        let mut msgs = Vec::new();
        if let Some(s) = system {
            msgs.push(ChatMessage::new("system", s));
        }
        msgs.push(ChatMessage::new("user", user));
        self.chat.render(&msgs, true)
    }
}
