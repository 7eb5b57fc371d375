//! wasm-chord inference engine.
//!
//! Read `ARCHITECTURE.md` at the repository root first. The data path is:
//! GGUF bytes → [`gguf`] (header, metadata, tensors in file order) → [`model`] weights (still
//! quantized, see [`quant`]) → [`tokenizer`] + [`chat`] → forward pass on a [`backend`] →
//! [`sampler`] → streaming detokenizer. [`engine`] ties them together for the CLI and the app.

pub mod backend;
pub mod chat;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod model;
pub mod quant;
pub mod sampler;
pub mod tokenizer;

pub use error::{Error, Result};
