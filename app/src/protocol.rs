//! Messages between the UI thread and the engine worker.
//!
//! Control messages travel as JSON strings (serde). Model bytes travel as raw `ArrayBuffer`s
//! (transferred, never copied into JSON): a binary message *is* `LoadChunk(bytes)`, in file order,
//! between `LoadStart` and `LoadEnd`.
//!
//! ```text
//! UI → worker   LoadStart{size,name} · <ArrayBuffer>… · LoadEnd | LoadCancel · Generate{…} · Stop
//! worker → UI   Ready · Progress{done,total} · Loaded{…} · Token{id,piece} · Done{…} · Error{message}
//! ```

use serde::{Deserialize, Serialize};

/// One chat turn as the worker sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatTurn {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

/// Sampling and length settings for one reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenParams {
    /// 0 = greedy (argmax, ties to the lowest id).
    pub temperature: f32,
    /// 0 = all tokens.
    pub top_k: u32,
    pub top_p: f32,
    pub max_tokens: u32,
    /// Context size in tokens (prompt + reply); 0 = the engine's default. Older turns are left
    /// out when the conversation no longer fits.
    #[serde(default)]
    pub n_ctx: u32,
    /// Completion mode: the last user message is the raw prompt, no chat template.
    pub raw: bool,
    /// Keep generating past end-of-generation tokens (tests compare fixed-length greedy runs).
    #[serde(default)]
    pub ignore_eos: bool,
    pub seed: u64,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.95,
            max_tokens: 256,
            n_ctx: 0,
            raw: false,
            ignore_eos: false,
            seed: 0,
        }
    }
}

/// Which engine the user wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendPref {
    /// WebGPU on a hardware adapter; the CPU engine where there is none or only a software
    /// renderer (SwiftShader is far slower than our SIMD CPU path).
    #[default]
    Auto,
    /// WebGPU on any adapter, software included.
    WebGpu,
    /// The CPU engine.
    Cpu,
}

/// Which engine runs the model, and why when it is not the GPU.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// "webgpu" or "cpu".
    pub kind: String,
    /// The GPU adapter (WebGPU only).
    pub adapter: Option<String>,
    /// Why the CPU engine runs instead of WebGPU (no navigator.gpu, no adapter, device lost,
    /// shader error, or the user's choice).
    pub fallback: Option<String>,
}

impl BackendInfo {
    pub fn is_gpu(&self) -> bool {
        self.kind == "webgpu"
    }
}

/// UI → worker (as JSON text; chunks go as binary messages, see the module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToWorker {
    /// A model of `size` bytes follows in binary chunks. Drops any model already loaded.
    LoadStart {
        size: u64,
        name: String,
        #[serde(default)]
        backend: BackendPref,
    },
    /// Every byte has been sent: build the model.
    LoadEnd,
    /// The user cancelled the download: forget the partial model.
    LoadCancel,
    Generate {
        messages: Vec<ChatTurn>,
        params: GenParams,
    },
    /// Stop the reply in progress after the current token.
    Stop,
}

/// Worker → UI (as JSON text).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FromWorker {
    /// The worker's wasm has started and its message handler is installed.
    Ready,
    /// Bytes of the model consumed so far; `header_ok` once the GGUF header has been validated.
    Progress {
        done: u64,
        total: u64,
        header_ok: bool,
    },
    Loaded {
        name: String,
        arch: String,
        n_params: u64,
        n_ctx: u64,
        backend: BackendInfo,
    },
    /// The backend changed after loading (the GPU failed mid-reply: the CPU takes over).
    Backend {
        backend: BackendInfo,
    },
    /// One generated token (`id` is `None` for text flushed at the end, e.g. a held-back UTF-8 tail).
    Token {
        id: Option<u32>,
        piece: String,
    },
    Done {
        tokens: u32,
        prompt_tokens: u32,
        prefill_tok_s: f64,
        decode_tok_s: f64,
        /// "eos", "length", "stopped" or "context".
        stop: String,
        /// Oldest conversation turns left out so the prompt fits the context.
        #[serde(default)]
        trimmed: u32,
    },
    Error {
        message: String,
    },
}

impl ToWorker {
    pub fn to_json(&self) -> String {
        // Serializing these plain enums cannot fail (no maps with non-string keys, no NaN issues
        // for serde_json: f32 NaN becomes null).
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl FromWorker {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msgs = [
            ToWorker::LoadStart {
                size: 44,
                name: "m.gguf".into(),
                backend: BackendPref::Cpu,
            },
            ToWorker::LoadEnd,
            ToWorker::Generate {
                messages: vec![ChatTurn {
                    role: "user".into(),
                    content: "hi".into(),
                }],
                params: GenParams::default(),
            },
            ToWorker::Stop,
        ];
        for m in msgs {
            let back: ToWorker = serde_json::from_str(&m.to_json()).unwrap();
            assert_eq!(back, m);
        }
        let t = FromWorker::Token {
            id: Some(28),
            piece: ",".into(),
        };
        assert_eq!(t.to_json(), r#"{"type":"Token","id":28,"piece":","}"#);
    }
}
