//! The parts of the web app that are plain Rust (no DOM): the UI ⇄ worker protocol, the model
//! catalog, settings, safe Markdown rendering and number formatting. Both binaries use them: `app`
//! (the Leptos UI, `main.rs`) and `worker` (the engine in a dedicated Web Worker, `bin/worker.rs`).

pub mod cache;
pub mod catalog;
pub mod explain;
pub mod fit;
pub mod format;
pub mod markdown;
pub mod protocol;
pub mod reply;
pub mod settings;
pub mod stop;
pub mod transcript;
