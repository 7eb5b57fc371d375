//! Messages between the UI thread and the engine worker.
//!
//! Control messages travel as JSON strings (serde). Model bytes travel as raw `ArrayBuffer`s
//! (transferred, never copied into JSON): a binary message *is* `LoadChunk(bytes)`, in file order,
//! between `LoadStart` and `LoadEnd`.
//!
//! ```text
//! UI → worker   LoadStart{size,name} · <ArrayBuffer>… · LoadEnd | LoadCancel · Generate{chat_id,…}
//!               · Stop · ForgetChat{chat_id} · KvRestore{chat_id} · <ArrayBuffer>
//!               · Tokenize{text,special} · Detokenize{ids} · Threads{threads}
//! worker → UI   Ready · Progress{done,total} · Loaded{…} · Token{id,piece} · Done{…} · Error{message}
//!               · Rejected{message} · KvSnapshot{chat_id} · <ArrayBuffer> · Heartbeat · Panic{message}
//!               · Tokens{ids} · Text{text} · Threads{threads}
//! ```
//! The worker can die (a panic traps the wasm, memory runs out) or hang: it says `Heartbeat` every
//! second and `Panic` from its panic hook, and the page restarts it when it panics, fires `error`
//! or `messageerror`, or stays silent too long with work to do (`engine_link.rs`).
//! After a reply the worker sends the conversation's KV cache (`engine::KvSnapshot` bytes) for the
//! UI to keep in IndexedDB; when a conversation reopened after a reload asks for its next reply,
//! the UI sends it back first, so the history is not recomputed.
//! The worker keeps one engine session (a KV cache) per open conversation, keyed by `chat_id`: a
//! `Generate` sends the whole conversation, and the worker evaluates only what that
//! conversation's cache does not hold yet.

use serde::{Deserialize, Serialize};

/// The engine the user asks for, and the one that runs (with the reason when it is the CPU):
/// the engine library's own types, so the names agree everywhere.
pub use inference::backend::{BackendChoice as BackendInfo, BackendKind, BackendPref};
pub use inference::tool_calls::{ToolCall, ToolDelta};

/// One chat turn as the worker sees it: the engine's own message type (role, content and
/// OpenAI's tool fields: `tool_calls` on an assistant turn, `tool_call_id`/`name` on a tool turn).
pub use inference::chat::ChatMessage as ChatTurn;

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
    /// Evaluate only what the conversation's cache does not hold (false: recompute it all).
    #[serde(default = "yes")]
    pub reuse: bool,
    pub seed: u64,
    /// Drop tokens less likely than `min_p` × the likeliest (`None`: the engine's default).
    #[serde(default)]
    pub min_p: Option<f32>,
    /// The reply ends before the first of these strings (which is not part of it).
    #[serde(default)]
    pub stop: Vec<String>,
    /// Structured output: every token is one this format allows.
    #[serde(default)]
    pub format: Option<OutputFormat>,
    /// Send the conversation's KV cache after the reply (`KvSnapshot`), for the page to keep
    /// (the app saves it with the conversation; the npm package does not ask for it).
    #[serde(default = "yes")]
    pub snapshot: bool,
    /// OpenAI `tools`: the template renders them, and the reply is parsed into tool calls
    /// (`Done::tool_calls`).
    #[serde(default)]
    pub tools: Option<serde_json::Value>,
    /// OpenAI `tool_choice` as sent (`"auto"`, `"none"`, `"required"`, `{"type": "function",
    /// "function": {"name"}}`); a required call is enforced with a grammar.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
}

/// What a reply must be (OpenAI's `response_format`, or a GBNF grammar).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON valid against this JSON Schema (the common subset: see `inference::grammar`).
    JsonSchema { schema: serde_json::Value },
    /// Text in this GBNF grammar (llama.cpp's grammar format).
    Grammar { grammar: String },
}

fn yes() -> bool {
    true
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
            reuse: true,
            seed: 0,
            min_p: None,
            stop: Vec::new(),
            format: None,
            snapshot: true,
            tools: None,
            tool_choice: None,
        }
    }
}

/// UI → worker (as JSON text; chunks go as binary messages, see the module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToWorker {
    /// A model of `size` bytes follows in binary chunks. The model already loaded stays until
    /// the new file's header is accepted (`Progress { header_ok: true }`), then it is dropped: a
    /// file rejected at its header leaves it loaded.
    LoadStart {
        size: u64,
        name: String,
        #[serde(default)]
        backend: BackendPref,
        /// A split model (`…-00001-of-0000N.gguf`): each file's size, the files' bytes sent one
        /// after the other (`size` is their sum). Empty: one file.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        parts: Vec<u64>,
    },
    /// Every byte has been sent: build the model.
    LoadEnd,
    /// The user cancelled the download: forget the partial model.
    LoadCancel,
    Generate {
        /// The conversation this reply belongs to (its session in the worker).
        #[serde(default)]
        chat_id: String,
        messages: Vec<ChatTurn>,
        /// Boxed: the other messages are small.
        params: Box<GenParams>,
    },
    /// Stop the reply in progress after the current token.
    Stop,
    /// The conversation was deleted: free its session.
    ForgetChat { chat_id: String },
    /// The next binary message is the saved KV cache of `chat_id` (restored, where it was made
    /// with this model and fits, before its next reply).
    KvRestore { chat_id: String },
    /// Token ids of `text` (`special`: special-token text such as `<|im_end|>` becomes its id).
    /// Answered with `Tokens`.
    Tokenize { text: String, special: bool },
    /// The text of `ids`. Answered with `Text`.
    Detokenize { ids: Vec<u32> },
    /// The CPU engine may use `threads` threads (the caller's included). Only the threaded build
    /// of the worker (`worker_mt_*`, a cross-origin isolated page) can run more than one; the
    /// default build stays at one. Answered with `Threads`: what runs.
    Threads { threads: u32 },
    /// Test hook (sent only when the page was opened with `?test-hooks`): panic now, as a bug in
    /// the engine would, so the page's recovery can be tested.
    TestCrash,
    /// Test hook (`?test-hooks` only): block the worker's thread for `secs` seconds, as a hung
    /// engine would (no heartbeats, no answers).
    TestHang { secs: u32 },
}

/// Worker → UI (as JSON text).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FromWorker {
    /// The worker's wasm has started and its message handler is installed.
    Ready,
    /// Threads the CPU engine runs (its pool is started: nested Web Workers in the threaded
    /// build), the answer to `ToWorker::Threads`.
    Threads {
        threads: u32,
    },
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
    /// With `tools`: the reply as content and tool-call deltas while it streams (beside the
    /// `Token`s; `Done` still has the whole reply parsed).
    ToolDelta {
        delta: ToolDelta,
    },
    Done {
        tokens: u32,
        /// Tokens of the whole templated conversation ...
        prompt_tokens: u32,
        /// ... of which the cache already held these ...
        #[serde(default)]
        reused_tokens: u32,
        /// ... and these were evaluated for this reply.
        #[serde(default)]
        evaluated_tokens: u32,
        /// Evaluated prompt tokens per second.
        prefill_tok_s: f64,
        decode_tok_s: f64,
        /// Time to the first token.
        #[serde(default)]
        ttft_ms: f64,
        /// "eos", "length", "stopped" or "context".
        stop: String,
        /// Earlier messages (partly) out of the model's view: the context was shifted.
        #[serde(default)]
        trimmed: u32,
        /// With `tools`: the reply's tool calls, and its text without them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    Error {
        message: String,
    },
    /// The engine refused the model's bytes: the file itself is bad (not a GGUF, truncated,
    /// inconsistent, unsupported). Only this deletes a cached or partially downloaded copy; any
    /// other failure (a crash, the GPU) keeps it.
    Rejected {
        message: String,
    },
    /// The next binary message is `chat_id`'s KV cache after its last reply, to save.
    KvSnapshot {
        chat_id: String,
    },
    /// The answer to `Tokenize`.
    Tokens {
        ids: Vec<u32>,
    },
    /// The answer to `Detokenize`.
    Text {
        text: String,
    },
    /// Sent every `HEARTBEAT_MS` while the worker's event loop runs: a worker that stays silent
    /// while it has work is stuck, and the page restarts it.
    Heartbeat,
    /// The engine panicked: its state cannot be trusted any more (wasm cannot unwind), so the
    /// page terminates this worker and starts a new one.
    Panic {
        message: String,
    },
}

/// How often the worker says it is alive.
pub const HEARTBEAT_MS: i32 = 1000;

/// How long a worker with work to do may stay silent before the page restarts it. Long enough
/// for the longest step that cannot yield (a long prompt's evaluation on a large model on the
/// CPU); the page offers a Restart button much earlier (`SILENT_HINT_MS`).
pub const HANG_TIMEOUT_MS: f64 = 300_000.0;

/// Silence after which the page says the engine has not answered and offers to restart it.
pub const SILENT_HINT_MS: f64 = 15_000.0;

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
                parts: Vec::new(),
            },
            ToWorker::LoadEnd,
            ToWorker::Generate {
                chat_id: "chat-1".into(),
                messages: vec![ChatTurn::new("user", "hi")],
                params: Box::default(),
            },
            ToWorker::Stop,
            ToWorker::ForgetChat {
                chat_id: "chat-1".into(),
            },
            ToWorker::TestCrash,
            ToWorker::TestHang { secs: 3 },
            ToWorker::Tokenize {
                text: "hi".into(),
                special: true,
            },
            ToWorker::Detokenize { ids: vec![1, 2] },
            ToWorker::Generate {
                chat_id: String::new(),
                messages: Vec::new(),
                params: Box::new(GenParams {
                    stop: vec!["\n".into()],
                    format: Some(OutputFormat::JsonSchema {
                        schema: serde_json::json!({"type": "object"}),
                    }),
                    ..GenParams::default()
                }),
            },
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
        assert_eq!(FromWorker::Heartbeat.to_json(), r#"{"type":"Heartbeat"}"#);
        // The thread count both ways (bench.mjs and the threaded worker speak this JSON).
        let th = ToWorker::Threads { threads: 4 };
        assert_eq!(th.to_json(), r#"{"type":"Threads","threads":4}"#);
        let back: FromWorker = serde_json::from_str(r#"{"type":"Threads","threads":2}"#).unwrap();
        assert_eq!(back, FromWorker::Threads { threads: 2 });
        for m in [
            FromWorker::Rejected {
                message: "not a GGUF file".into(),
            },
            FromWorker::Panic {
                message: "index out of bounds".into(),
            },
        ] {
            let back: FromWorker = serde_json::from_str(&m.to_json()).unwrap();
            assert_eq!(back, m);
        }
        // What the npm package sends for `response_format` (older pages send no `format`).
        let p: GenParams = serde_json::from_str(
            r#"{"temperature":0,"top_k":0,"top_p":1,"max_tokens":8,"raw":false,"seed":1,
                "format":{"type":"json_object"},"stop":["x"]}"#,
        )
        .unwrap();
        assert_eq!(p.format, Some(OutputFormat::JsonObject));
        assert!(p.reuse && p.min_p.is_none());
        // The engine's backend names on the wire.
        let b = BackendInfo::cpu("no WebGPU");
        assert!(serde_json::to_string(&b)
            .unwrap()
            .contains(r#""kind":"cpu""#));
        let p: BackendPref = serde_json::from_str(r#""webgpu""#).unwrap();
        assert_eq!(p, BackendPref::WebGpu);
    }
}
