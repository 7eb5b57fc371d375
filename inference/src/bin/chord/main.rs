//! `chord` — the native command line of wasm-chord (contract: ../shared/DESIGN.md).
//!
//! ```text
//! chord generate --model PATH --prompt TEXT [--chat] [--system TEXT] [--max-tokens N]
//!                [--temperature T] [--top-p P] [--top-k K] [--min-p P] [--repeat-penalty R]
//!                [--seed S] [--ctx-size N] [--ignore-eos] [--backend cpu|webgpu] [--threads N] [--json]
//! chord tokenize --model PATH --text TEXT [--json]
//! chord logits   --model PATH (--prompt TEXT | --tokens 1,2,3) [--top K] [--all-positions]
//!                [--backend ...] [--threads N] [--json]
//! chord inspect  --model PATH [--json]
//! ```
//! Errors are one line on stderr and a non-zero exit status.
//!
//! The CLI is native only (it reads files); on wasm32 the binary is an empty stub, so that
//! `cargo clippy --target wasm32-unknown-unknown --bins` checks the whole workspace.

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
