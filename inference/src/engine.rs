//! The public API: load a model from bytes that arrive in chunks (with progress), open a session
//! with a KV cache, and generate text as a stream of pieces.
//!
//! ```text
//! ModelLoader::new(file_size) ─ push(chunk)… ─ finish() ─► Model
//! Model ─ Session::new(&model, n_ctx, threads) ─ generate(prompt, params, on_piece) ─► Generation
//! ```

use std::collections::{HashMap, HashSet};

use crate::backend::cpu::{Cpu, Logits};
use crate::chat::{ChatMessage, ChatTemplate};
use crate::error::{Error, Result};
use crate::gguf::{GgufHeader, TensorStream};
use crate::model::{Bytes, HParams, KvCache, Weights};
use crate::sampler::{Sampler, SamplerParams};
use crate::tokenizer::{Detokenizer, Tokenizer};

/// Prompt tokens evaluated per batch during prefill (bounds activation memory for long prompts).
pub const PREFILL_BATCH: usize = 256;

// ----------------------------------------------------------------------------------------------
// Model
// ----------------------------------------------------------------------------------------------

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
    /// GPU backend can run this model (see [`ModelLoader::with_sink`]).
    pub offloaded: bool,
}

/// What the header says, checked before any tensor byte is read (the UI validates a dropped file
/// with this, so an unsupported model fails in milliseconds, not after a download).
pub struct Preflight {
    pub header: GgufHeader,
    pub hp: HParams,
    pub tokenizer: Tokenizer,
    pub chat: ChatTemplate,
}

impl Preflight {
    pub fn new(header: GgufHeader) -> Result<Self> {
        let hp = HParams::from_metadata(&header.metadata)?;
        let tokenizer = Tokenizer::from_metadata(&header.metadata)?;
        if tokenizer.vocab_size() != hp.n_vocab {
            return Err(Error::Model(format!(
                "tokenizer has {} tokens, the model {}",
                tokenizer.vocab_size(),
                hp.n_vocab
            )));
        }
        let chat = ChatTemplate::from_metadata(&header.metadata)?;
        // Every tensor the architecture needs must be present with the right shape: check now with
        // placeholder bytes, so a bad file fails before its tensor data is read.
        Weights::check(&hp, &header)?;
        Ok(Preflight {
            header,
            hp,
            tokenizer,
            chat,
        })
    }
}

/// Takes a tensor's bytes as they stream in (e.g. uploads a matrix to the GPU); `Ok(true)` means
/// it kept them, so the loader does not.
pub type TensorSink = Box<dyn FnMut(&crate::gguf::TensorInfo, &[u8]) -> Result<bool>>;

/// Builds a [`Model`] from file bytes pushed in order, in chunks of any size.
pub struct ModelLoader {
    file_size: u64,
    received: u64,
    prefix: Vec<u8>,
    pre: Option<Preflight>,
    stream: Option<TensorStream>,
    tensors: HashMap<String, Bytes>,
    sink: Option<TensorSink>,
    /// Tensors the sink kept.
    sunk: HashSet<String>,
}

impl ModelLoader {
    pub fn new(file_size: u64) -> Self {
        ModelLoader {
            file_size,
            received: 0,
            prefix: Vec::new(),
            pre: None,
            stream: None,
            tensors: HashMap::new(),
            sink: None,
            sunk: HashSet::new(),
        }
    }

    /// A loader that offers every tensor to `sink` first (tensor by tensor, in file order, as the
    /// bytes arrive): what it keeps never stays on the host.
    pub fn with_sink(file_size: u64, sink: TensorSink) -> Self {
        ModelLoader {
            sink: Some(sink),
            ..Self::new(file_size)
        }
    }

    /// Bytes pushed so far, of `file_size`.
    pub fn progress(&self) -> (u64, u64) {
        (self.received, self.file_size)
    }

    /// The validated header, once it has been read.
    pub fn preflight(&self) -> Option<&Preflight> {
        self.pre.as_ref()
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.received += chunk.len() as u64;
        if self.received > self.file_size {
            return Err(Error::Invalid(format!(
                "received more than the announced {} bytes",
                self.file_size
            )));
        }
        let tensors = &mut self.tensors;
        let sink = &mut self.sink;
        let sunk = &mut self.sunk;
        let mut keep = |t: &crate::gguf::TensorInfo, d: std::borrow::Cow<'_, [u8]>| {
            if let Some(sink) = sink.as_mut() {
                if sink(t, &d)? {
                    sunk.insert(t.name.clone());
                    return Ok(());
                }
            }
            tensors.insert(t.name.clone(), Bytes::from_vec(d.into_owned()));
            Ok(())
        };
        if let Some(s) = &mut self.stream {
            return s.push(chunk, &mut keep);
        }
        self.prefix.extend_from_slice(chunk);
        let Some(header) = GgufHeader::parse(&self.prefix, self.file_size)? else {
            return Ok(());
        };
        let pre = Preflight::new(header)?;
        let mut s = TensorStream::new(pre.header.clone(), 0);
        let prefix = std::mem::take(&mut self.prefix);
        s.push(&prefix, &mut keep)?;
        self.stream = Some(s);
        self.pre = Some(pre);
        Ok(())
    }

    pub fn finish(mut self) -> Result<Model> {
        let (Some(pre), Some(stream)) = (self.pre.take(), self.stream.take()) else {
            return Err(Error::Gguf(format!(
                "file is truncated: {} bytes end inside the header",
                self.received
            )));
        };
        stream.finish()?;
        let tensors = std::mem::take(&mut self.tensors);
        let sunk = std::mem::take(&mut self.sunk);
        let empty = Bytes::from_vec(Vec::new());
        let bytes = |t: &crate::gguf::TensorInfo| {
            if sunk.contains(&t.name) {
                return Ok(empty.clone());
            }
            tensors
                .get(&t.name)
                .cloned()
                .ok_or_else(|| Error::Gguf(format!("tensor `{}` was not received", t.name)))
        };
        let offloaded = !sunk.is_empty();
        let weights = if offloaded {
            Weights::load_offloaded(&pre.hp, &pre.header, bytes)?
        } else {
            Weights::load(&pre.hp, &pre.header, bytes)?
        };
        let md = &pre.header.metadata;
        Ok(Model {
            name: md
                .get_str("general.name")
                .unwrap_or(pre.hp.arch.name())
                .to_owned(),
            file_size: self.file_size,
            tensor_bytes: pre.header.tensor_bytes(),
            n_params: pre.header.tensors.iter().map(|t| t.n_elements()).sum(),
            hp: pre.hp,
            weights,
            tokenizer: pre.tokenizer,
            chat: pre.chat,
            offloaded,
        })
    }
}

impl Model {
    /// Load a model from bytes already in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let mut l = ModelLoader::new(bytes.len() as u64);
        for c in bytes.chunks(16 << 20) {
            l.push(c)?;
        }
        l.finish()
    }

    /// Load a GGUF file from disk, streaming it tensor by tensor (memory ≈ the tensors' bytes).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_file(path: &std::path::Path) -> Result<Model> {
        Self::load_file_with(path, None)
    }

    /// [`Model::load_file`], offering each tensor to `sink` as it is read (GPU upload).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_file_with(path: &std::path::Path, sink: Option<TensorSink>) -> Result<Model> {
        use std::io::Read;
        let io = |e: std::io::Error| Error::Invalid(format!("cannot read {}: {e}", path.display()));
        let mut f = std::fs::File::open(path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        let mut l = match sink {
            Some(s) => ModelLoader::with_sink(size, s),
            None => ModelLoader::new(size),
        };
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            l.push(&buf[..n])?;
        }
        l.finish()
    }

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

// ----------------------------------------------------------------------------------------------
// Session and generation
// ----------------------------------------------------------------------------------------------

/// One conversation: the KV cache (preallocated for `n_ctx` tokens) and the tokens in it.
pub struct Session<'m> {
    pub model: &'m Model,
    cpu: Cpu,
    pub kv: KvCache,
    pub tokens: Vec<u32>,
}

#[derive(Clone, Debug)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampler: SamplerParams,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            sampler: SamplerParams::default(),
            ignore_eos: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub prompt_len: usize,
    /// Why it stopped: "eos", "length", "stopped" or "context".
    pub stop: &'static str,
}

impl Generation {
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prompt_len, self.prefill_s)
    }
    /// Decode rate: tokens after the first (which comes from the prefill logits) per second.
    pub fn decode_tok_s(&self) -> f64 {
        rate(self.tokens.len().saturating_sub(1), self.decode_s)
    }
}

fn rate(n: usize, s: f64) -> f64 {
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// Seconds on a monotonic-enough clock, for the speed figures (in the browser: `Date.now()`,
/// since `std::time::Instant` panics on wasm32-unknown-unknown).
pub(crate) fn now() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<std::time::Instant> = OnceLock::new();
        T0.get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
    }
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now() / 1000.0
    }
}

impl<'m> Session<'m> {
    pub fn new(model: &'m Model, n_ctx: usize, threads: usize) -> Result<Self> {
        if model.offloaded {
            return Err(Error::Unsupported(
                "this model's weights were loaded onto the GPU only; load it again for the CPU engine"
                    .into(),
            ));
        }
        let n_ctx = n_ctx.clamp(1, model.hp.n_ctx_train);
        Ok(Session {
            model,
            cpu: Cpu::new(threads),
            kv: KvCache::new(&model.hp, n_ctx)?,
            tokens: Vec::new(),
        })
    }

    /// Activation precision of the CPU matrix products ([`crate::quant::Activations::F32`] unless
    /// set).
    pub fn set_activations(&mut self, act: crate::quant::Activations) {
        self.cpu.set_activations(act);
    }

    pub fn reset(&mut self) {
        self.kv.clear();
        self.tokens.clear();
    }

    /// Evaluate `tokens` after those already in the cache; logits of the last one or of all.
    pub fn eval(&mut self, tokens: &[u32], want: Logits) -> Result<Vec<f32>> {
        let m = self.model;
        let mut out = Vec::new();
        for chunk in tokens.chunks(PREFILL_BATCH) {
            let l = self
                .cpu
                .forward(&m.hp, &m.weights, &mut self.kv, chunk, want)?;
            match want {
                Logits::All => out.extend_from_slice(&l),
                Logits::Last => out = l,
            }
            self.tokens.extend_from_slice(chunk);
        }
        Ok(out)
    }

    /// Start generating after `prompt` (token ids, BOS included if wanted): evaluates the prompt
    /// as one batch and returns a [`Generator`] that yields one token per [`Generator::next_token`] call
    /// (so a worker can check for Stop between tokens).
    pub fn start<'s>(
        &'s mut self,
        prompt: &[u32],
        params: &GenerateParams,
    ) -> Result<Generator<'s, 'm>> {
        if prompt.is_empty() {
            return Err(Error::Invalid("the prompt is empty".into()));
        }
        let room = self.kv.n_ctx.saturating_sub(self.kv.len);
        if prompt.len() > room {
            return Err(Error::Invalid(format!(
                "the prompt has {} tokens but only {room} fit in the {}-token context",
                prompt.len(),
                self.kv.n_ctx
            )));
        }
        let logits = self.eval(prompt, Logits::Last)?;
        let tok = &self.model.tokenizer;
        Ok(Generator {
            sampler: Sampler::new(params.sampler.clone()),
            detok: Detokenizer::new(tok),
            logits,
            pending: None,
            produced: 0,
            params: params.clone(),
            stop: None,
            session: self,
        })
    }

    /// Generate after `prompt`; `on_piece` gets each new piece of text (whole UTF-8 characters
    /// only; a final flush comes with id `u32::MAX`) and returns `false` to stop.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        mut on_piece: impl FnMut(u32, &str) -> bool,
    ) -> Result<Generation> {
        let t0 = now();
        let mut gen = self.start(prompt, params)?;
        let t1 = now();
        let mut g = Generation {
            prompt_len: prompt.len(),
            prefill_s: t1 - t0,
            ..Default::default()
        };
        while let Some((id, piece)) = gen.next_token()? {
            g.tokens.push(id);
            g.text.push_str(&piece);
            if !on_piece(id, &piece) {
                gen.stop();
            }
        }
        let rest = gen.flush();
        if !rest.is_empty() {
            g.text.push_str(&rest);
            on_piece(u32::MAX, &rest);
        }
        g.stop = gen.stop_reason().unwrap_or("length");
        g.decode_s = now() - t1;
        Ok(g)
    }
}

/// Token-by-token generation over a [`Session`].
pub struct Generator<'s, 'm> {
    session: &'s mut Session<'m>,
    sampler: Sampler,
    detok: Detokenizer<'m>,
    /// Logits for the next choice.
    logits: Vec<f32>,
    /// The last token chosen, not yet evaluated (its K/V are not in the cache yet).
    pending: Option<u32>,
    produced: usize,
    params: GenerateParams,
    stop: Option<&'static str>,
}

impl Generator<'_, '_> {
    /// The next token and its text piece, or `None` when generation is over.
    pub fn next_token(&mut self) -> Result<Option<(u32, String)>> {
        if self.stop.is_some() {
            return Ok(None);
        }
        if self.produced >= self.params.max_tokens {
            self.stop = Some("length");
            return Ok(None);
        }
        if let Some(prev) = self.pending.take() {
            if self.session.kv.len >= self.session.kv.n_ctx {
                self.stop = Some("context");
                return Ok(None);
            }
            self.logits = self.session.eval(&[prev], Logits::Last)?;
        }
        let history = &self.session.tokens;
        let next = self.sampler.sample(&mut self.logits, history);
        if !self.params.ignore_eos && self.session.model.tokenizer.is_eog(next) {
            self.stop = Some("eos");
            return Ok(None);
        }
        self.pending = Some(next);
        self.produced += 1;
        Ok(Some((next, self.detok.push(next))))
    }

    /// Stop early (the user pressed Stop).
    pub fn stop(&mut self) {
        self.stop.get_or_insert("stopped");
    }

    /// "eos", "length", "stopped" or "context" once generation is over.
    pub fn stop_reason(&self) -> Option<&'static str> {
        self.stop
    }

    /// Bytes held back by the detokenizer (an incomplete UTF-8 character), as text.
    pub fn flush(&mut self) -> String {
        self.detok.flush()
    }

    /// Put the last chosen token into the KV cache, so a conversation can continue after it.
    pub fn commit(mut self) -> Result<()> {
        if let Some(prev) = self.pending.take() {
            if self.session.kv.len < self.session.kv.n_ctx {
                self.session.eval(&[prev], Logits::Last)?;
            }
        }
        Ok(())
    }
}
