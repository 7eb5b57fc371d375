//! `chord` — the native command line of wasm-chord (contract: ../shared/DESIGN.md, usage:
//! `chord help`). Commands: generate, chat, tokenize, logits, inspect, bench,
//! quantize, split.
//! Errors are one line on stderr and a non-zero exit status.
//!
//! The CLI is native only (it reads files); on wasm32 the binary is an empty stub, so that
//! `cargo clippy --target wasm32-unknown-unknown --bins` checks the whole workspace.

#[cfg(not(target_arch = "wasm32"))]
mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod chat;
#[cfg(not(target_arch = "wasm32"))]
mod cli;
#[cfg(not(target_arch = "wasm32"))]
mod inspect;
#[cfg(not(target_arch = "wasm32"))]
mod quantize;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
