//! wasm-chord inference engine.
//!
//! Read `ARCHITECTURE.md` at the repository root first. The data path is:
//! GGUF bytes → [`gguf`] (header, metadata, tensors in file order) → [`loader`] (a [`model`] with
//! its weights still quantized, see [`quant`], on the backend chosen for it) → [`tokenizer`] +
//! [`chat`] / [`conversation`] → [`engine`] (sessions and generation, written once) over a
//! [`backend`] that only runs the model → [`sampler`] → streaming text.

pub mod backend;
pub mod chat;
pub mod conversation;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod grammar;
pub mod loader;
pub mod model;
pub mod pyjson;
pub mod quant;
pub mod quantize;
pub mod sampler;
pub mod split;
pub mod tokenizer;
pub mod tool_calls;

pub use error::{Error, Result};
