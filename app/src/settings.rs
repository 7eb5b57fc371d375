//! User settings, persisted in `localStorage` (gloo-storage) by an `Effect` in the UI.

use serde::{Deserialize, Serialize};

use crate::protocol::{BackendPref, GenParams};

pub const STORAGE_KEY: &str = "wasm-chord.settings.v1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: u32,
    pub max_tokens: u32,
    /// Context size in tokens (conversation + reply).
    pub n_ctx: u32,
    /// Which engine runs the next model loaded.
    pub backend: BackendPref,
    /// Completion mode: no chat template, the message is the raw prompt.
    pub raw: bool,
    pub system_prompt: String,
    /// Keep each conversation's KV cache between replies (and save it with the conversation),
    /// so a reply evaluates only the new tokens. Off: every reply recomputes the whole
    /// conversation (for comparison).
    pub reuse_cache: bool,
    /// CPU engine threads: 0 = automatic (the cores, at most 8, on a cross-origin isolated page
    /// where the threaded engine runs; one elsewhere). Applies when the engine (re)starts.
    pub threads: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            max_tokens: 256,
            n_ctx: 2048,
            backend: BackendPref::Auto,
            raw: false,
            system_prompt: String::new(),
            reuse_cache: true,
            threads: 0,
        }
    }
}

impl Settings {
    /// Clamp every field into its valid range (values from storage or a form are untrusted).
    pub fn sanitized(mut self) -> Self {
        let finite = |v: f32, d: f32| if v.is_finite() { v } else { d };
        self.temperature = finite(self.temperature, 0.7).clamp(0.0, 2.0);
        self.top_p = finite(self.top_p, 0.95).clamp(0.0, 1.0);
        self.top_k = self.top_k.min(1000);
        self.max_tokens = self.max_tokens.clamp(1, 4096);
        self.n_ctx = self.n_ctx.clamp(256, 32768);
        self.threads = self.threads.min(16);
        self
    }

    pub fn gen_params(&self, seed: u64) -> GenParams {
        let s = self.clone().sanitized();
        GenParams {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            max_tokens: s.max_tokens,
            n_ctx: s.n_ctx,
            raw: s.raw,
            ignore_eos: false,
            reuse: s.reuse_cache,
            seed,
            ..GenParams::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_and_defaults() {
        let s: Settings = serde_json::from_str(r#"{"temperature": 9, "max_tokens": 0}"#).unwrap();
        let s = s.sanitized();
        assert_eq!(s.temperature, 2.0);
        assert_eq!(s.max_tokens, 1);
        assert_eq!(s.top_k, 40);
        let p = Settings::default().gen_params(7);
        assert_eq!(
            (p.seed, p.max_tokens, p.raw, p.reuse),
            (7, 256, false, true)
        );
        // Saved before the settings existed: the cache is kept, threads are automatic.
        assert!(s.reuse_cache);
        assert_eq!(s.threads, 0);
    }
}
