//! Loading: GGUF bytes that arrive in chunks (a download, IndexedDB, `File` slices, a file on
//! disk) become a [`Model`], on the backend chosen for it.
//!
//! ```text
//! Loader::new(file_size, &LoadOptions).await   opens the GPU (or says why the CPU runs)
//!   .push(chunk)…                              header checked first (Preflight); on WebGPU each
//!                                              weight matrix is uploaded as soon as it is complete
//!   .finish().await                            → LoadedModel { model, gpu, choice }
//! LoadedModel::session(&SessionOptions)        → engine::Session on that backend
//! ```
//! The CLI, the browser worker and the tests all load through [`Loader`].

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::backend::{BackendChoice, BackendKind, BackendPref, GpuOptions};
use crate::chat::ChatTemplate;
use crate::error::{Error, Result};
use crate::gguf::{GgufHeader, TensorInfo, TensorStream, MAX_HEADER_BYTES};
use crate::model::{Bytes, HParams, Model, Weights};
use crate::tokenizer::Tokenizer;

#[cfg(feature = "webgpu")]
use crate::backend::webgpu::{GpuDevice, GpuModel, GpuUploader};
#[cfg(feature = "webgpu")]
use std::cell::RefCell;

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
        let pre = Self::new_partial(header)?;
        // Every tensor the architecture needs must be present with the right shape: check now with
        // placeholder bytes, so a bad file fails before its tensor data is read.
        Weights::check(&pre.hp, &pre.header)?;
        Ok(pre)
    }
}

impl Preflight {
    /// The first file of a split model: its metadata (hyper-parameters, tokenizer, template);
    /// the tensors are checked once every file's header is in.
    pub fn new_partial(header: GgufHeader) -> Result<Self> {
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
        Ok(Preflight {
            header,
            hp,
            tokenizer,
            chat,
        })
    }
}

/// The first header parse waits for this many bytes (or the whole file).
const MIN_PARSE: usize = 64 << 10;

/// Takes tensors' bytes as they stream in (e.g. uploads matrices to the GPU), piece by piece: the
/// loader never assembles or keeps a tensor the sink takes.
pub trait TensorSink {
    /// Whether it takes this tensor (asked once per tensor, when the header is read).
    fn takes(&mut self, t: &TensorInfo) -> Result<bool>;
    /// The next `bytes` of a tensor it takes, from byte `at` of the tensor on: tensors in file
    /// order, each one's bytes in order.
    fn write(&mut self, t: &TensorInfo, at: u64, bytes: &[u8]) -> Result<()>;
}

/// Builds a [`Model`] from file bytes pushed in order, in chunks of any size. A split model
/// (`name-00001-of-00003.gguf`, …: llama.cpp's `gguf-split`) is its files' bytes pushed one
/// file after the other ([`ModelLoader::new_split`]): the first file holds the metadata, each
/// file a header listing its own tensors.
pub struct ModelLoader {
    /// All files together.
    file_size: u64,
    /// Each file's size (one for an ordinary model).
    shards: Vec<u64>,
    /// The file being received, and where it starts in the pushed bytes.
    shard: usize,
    shard_start: u64,
    received: u64,
    prefix: Vec<u8>,
    /// Prefix length at the last failed header parse: the next attempt waits until the prefix
    /// has doubled (or the file is complete), so parsing a header that arrives in many small
    /// chunks costs O(header), not O(header²).
    parsed_at: usize,
    pre: Option<Preflight>,
    stream: Option<TensorStream>,
    tensors: HashMap<String, Bytes>,
    sink: Option<Box<dyn TensorSink>>,
    /// The current file's tensors that the sink takes, with where each starts in the file, in
    /// file order (the tensor stream skips their bytes); the next of them, and its first bytes
    /// (for the fingerprint).
    streamed: Vec<(u64, TensorInfo)>,
    next_streamed: usize,
    head: Vec<u8>,
    /// Tensors the sink kept.
    sunk: HashSet<String>,
    /// Fused matrices (QKV, gate+up) the sink is not offered: the weights split them by rows
    /// on the host (see [`crate::model::Weights`]).
    host_only: HashSet<String>,
    /// FNV-1a over the file size and every tensor's name, type, shape and first bytes.
    fingerprint: u64,
}

/// The fused matrices of a file: `attn_qkv`, and `ffn_up` where the block has no `ffn_gate`
/// (Phi-3's gate+up).
fn fused_matrices(h: &GgufHeader) -> HashSet<String> {
    let names: HashSet<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    h.tensors
        .iter()
        .filter(|t| {
            let n = &t.name;
            n.ends_with(".attn_qkv.weight")
                || n.strip_suffix(".ffn_up.weight")
                    .is_some_and(|blk| !names.contains(format!("{blk}.ffn_gate.weight").as_str()))
        })
        .map(|t| t.name.clone())
        .collect()
}

/// The fingerprint after a tensor: its name, type, shape and first 256 bytes.
fn fingerprint(mut h: u64, t: &TensorInfo, data: &[u8]) -> u64 {
    h = fnv(h, t.name.as_bytes());
    h = fnv(h, t.ty.name().as_bytes());
    for dim in &t.dims {
        h = fnv(h, &dim.to_le_bytes());
    }
    fnv(h, &data[..data.len().min(256)])
}

/// FNV-1a, 64 bits.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl ModelLoader {
    pub fn new(file_size: u64) -> Self {
        Self::new_split(&[file_size])
    }

    /// A model split into files of these sizes, pushed in order.
    pub fn new_split(shards: &[u64]) -> Self {
        let file_size = shards.iter().fold(0u64, |a, &b| a.saturating_add(b));
        ModelLoader {
            file_size,
            shards: shards.to_vec(),
            shard: 0,
            shard_start: 0,
            received: 0,
            prefix: Vec::new(),
            parsed_at: 0,
            pre: None,
            stream: None,
            tensors: HashMap::new(),
            sink: None,
            streamed: Vec::new(),
            next_streamed: 0,
            head: Vec::new(),
            sunk: HashSet::new(),
            host_only: HashSet::new(),
            fingerprint: fnv(0xcbf2_9ce4_8422_2325, &file_size.to_le_bytes()),
        }
    }

    /// A loader that gives `sink` the tensors it takes, as their bytes arrive: they never stay
    /// on the host.
    pub fn with_sink(shards: &[u64], sink: Box<dyn TensorSink>) -> Self {
        ModelLoader {
            sink: Some(sink),
            ..Self::new_split(shards)
        }
    }

    fn shard_size(&self) -> u64 {
        self.shards.get(self.shard).copied().unwrap_or(0)
    }

    /// Bytes pushed so far, of `file_size`.
    pub fn progress(&self) -> (u64, u64) {
        (self.received, self.file_size)
    }

    /// The validated header, once it has been read.
    pub fn preflight(&self) -> Option<&Preflight> {
        self.pre.as_ref()
    }

    pub fn push(&mut self, mut chunk: &[u8]) -> Result<()> {
        if self.received.saturating_add(chunk.len() as u64) > self.file_size {
            return Err(Error::Invalid(format!(
                "received more than the announced {} bytes",
                self.file_size
            )));
        }
        // A chunk may span the end of one file of a split model and the start of the next.
        while !chunk.is_empty() {
            let left = self.shard_start + self.shard_size() - self.received;
            let (part, rest) = chunk.split_at(chunk.len().min(left as usize));
            self.received += part.len() as u64;
            self.push_part(part)?;
            chunk = rest;
            if self.received == self.shard_start + self.shard_size()
                && self.shard + 1 < self.shards.len()
            {
                self.next_shard()?;
            }
        }
        Ok(())
    }

    /// The current file is complete: the next one starts with its own header.
    fn next_shard(&mut self) -> Result<()> {
        match self.stream.take() {
            Some(s) => self.finish_stream(&s)?,
            None => {
                return Err(Error::Gguf(format!(
                    "split file {} of {} is truncated: it ends inside its header",
                    self.shard + 1,
                    self.shards.len()
                )))
            }
        }
        self.shard_start += self.shard_size();
        self.shard += 1;
        self.prefix.clear();
        self.parsed_at = 0;
        Ok(())
    }

    /// A header is complete: check it (the first file's: the whole model's metadata; a later
    /// file's: that it belongs to this model) and add its tensors.
    fn take_header(&mut self, header: GgufHeader) -> Result<()> {
        let n = self.shards.len() as u64;
        let md = &header.metadata;
        let count = md.get_u64("split.count").unwrap_or(1).max(1);
        let no = md.get_u64("split.no").unwrap_or(0);
        let this = self.shard as u64;
        if count != n || no != this {
            return Err(Error::Gguf(if n == 1 {
                format!(
                    "this file is part {} of a model split into {count} files (…-{:05}-of-{count:05}.gguf): load it together with the other parts",
                    no + 1,
                    no + 1
                )
            } else {
                format!(
                    "file {} of the {n} given is part {} of {count} of a split model: give every part, in order",
                    this + 1,
                    no + 1
                )
            }));
        }
        // This file's tensors, for the stream (without the ones the sink takes: see below).
        let mut own = GgufHeader {
            version: header.version,
            metadata: Default::default(),
            tensors: header.tensors.clone(),
            alignment: header.alignment,
            data_offset: header.data_offset,
            file_size: header.file_size,
        };
        if self.shard == 0 {
            let pre = if n == 1 {
                Preflight::new(header)?
            } else {
                Preflight::new_partial(header)?
            };
            self.pre = Some(pre);
        } else if let Some(pre) = self.pre.as_mut() {
            let have: HashSet<&str> = pre.header.tensors.iter().map(|t| t.name.as_str()).collect();
            if let Some(t) = header
                .tensors
                .iter()
                .find(|t| have.contains(t.name.as_str()))
            {
                return Err(Error::Gguf(format!(
                    "tensor `{}` is in two files of the split model",
                    t.name
                )));
            }
            pre.header.tensors.extend(header.tensors);
        }
        if let Some(pre) = self.pre.as_mut() {
            if self.shard + 1 == self.shards.len() && n > 1 {
                let want = pre.header.metadata.get_u64("split.tensors.count");
                let got = pre.header.tensors.len() as u64;
                if want.is_some_and(|w| w != got) {
                    return Err(Error::Gguf(format!(
                        "the split model lists {} tensors, its files hold {got}",
                        want.unwrap_or_default()
                    )));
                }
                Weights::check(&pre.hp, &pre.header)?;
            }
            self.host_only = fused_matrices(&pre.header);
        }
        // The tensors the sink takes go to it as their bytes arrive; the stream skips them.
        let (mut streamed, mut kept) = (Vec::new(), Vec::new());
        for i in own.file_order() {
            let t = own.tensors[i].clone();
            let take = match self.sink.as_mut() {
                Some(s) if t.size > 0 && !self.host_only.contains(&t.name) => s.takes(&t)?,
                _ => false,
            };
            if take { &mut streamed } else { &mut kept }.push(t);
        }
        own.tensors = kept;
        self.stream = Some(TensorStream::new(&own, 0));
        self.streamed = streamed
            .into_iter()
            .map(|t| (own.data_offset + t.offset, t))
            .collect();
        self.next_streamed = 0;
        Ok(())
    }

    /// The current file ended: an error naming the first tensor not complete, if any.
    fn finish_stream(&self, stream: &TensorStream) -> Result<()> {
        let pos = self.received - self.shard_start;
        let open = self.streamed.get(self.next_streamed);
        if open.is_none_or(|(start, _)| pos < *start) {
            stream.finish()?;
        }
        match open {
            Some((_, t)) => Err(Error::Gguf(format!(
                "file ended at byte {pos} before tensor `{}` was complete",
                t.name
            ))),
            None => Ok(()),
        }
    }

    fn push_part(&mut self, chunk: &[u8]) -> Result<()> {
        // Until the header is complete, collect bytes; then the stream takes them all.
        let mut first = None;
        if self.stream.is_none() {
            let Some(header) = self.collect_header(chunk)? else {
                return Ok(());
            };
            self.take_header(header)?;
            first = Some(std::mem::take(&mut self.prefix));
        }
        let data = first.as_deref().unwrap_or(chunk);
        // Where `data` starts in the current file.
        let mut pos = self.received - self.shard_start - data.len() as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let Some(s) = &mut self.stream else {
                return Ok(());
            };
            // Up to the next tensor the sink takes, or to its end if `pos` is inside it.
            let (n, streamed) = match self.streamed.get(self.next_streamed) {
                Some((start, t)) if pos >= *start => (start + t.size - pos, true),
                Some((start, _)) => (start - pos, false),
                None => (rest.len() as u64, false),
            };
            let (part, tail) = rest.split_at(n.min(rest.len() as u64) as usize);
            if streamed {
                // The stream skips these bytes (no tensor of its own lies there).
                s.push(part, |_, _| Ok(()))?;
                self.write_streamed(pos, part)?;
            } else {
                let tensors = &mut self.tensors;
                let fp = &mut self.fingerprint;
                s.push(part, |t: &TensorInfo, d: std::borrow::Cow<'_, [u8]>| {
                    *fp = fingerprint(*fp, t, &d);
                    tensors.insert(t.name.clone(), Bytes::from_vec(d.into_owned()));
                    Ok(())
                })?;
            }
            pos += part.len() as u64;
            rest = tail;
        }
        Ok(())
    }

    /// Bytes of the next tensor the sink takes, from `pos` in the current file on.
    fn write_streamed(&mut self, pos: u64, part: &[u8]) -> Result<()> {
        let (Some((start, t)), Some(sink)) =
            (self.streamed.get(self.next_streamed), self.sink.as_mut())
        else {
            return Ok(());
        };
        let at = pos - start;
        let head = (256 - self.head.len()).min(part.len());
        self.head.extend_from_slice(&part[..head]);
        sink.write(t, at, part)?;
        if at + part.len() as u64 == t.size {
            self.fingerprint = fingerprint(self.fingerprint, t, &self.head);
            self.head.clear();
            self.sunk.insert(t.name.clone());
            self.next_streamed += 1;
        }
        Ok(())
    }

    /// Buffer `chunk` and try to parse the header when the prefix has doubled since the last
    /// try; an error once the prefix is past what a header may be ([`MAX_HEADER_BYTES`]).
    fn collect_header(&mut self, chunk: &[u8]) -> Result<Option<GgufHeader>> {
        self.prefix.extend_from_slice(chunk);
        let len = self.prefix.len();
        let size = self.shard_size();
        let complete = len as u64 >= size;
        if !complete && len < self.parsed_at.saturating_mul(2).max(MIN_PARSE) {
            return Ok(None);
        }
        self.parsed_at = len;
        let header = GgufHeader::parse(&self.prefix, size)?;
        // The parser bounds every count by MAX_HEADER_BYTES, so this only catches a header
        // that ends inside a value that is itself within the limit.
        if header.is_none() && len as u64 > 2 * MAX_HEADER_BYTES {
            return Err(Error::Gguf(format!(
                "the header is larger than {} MB",
                MAX_HEADER_BYTES >> 20
            )));
        }
        Ok(header)
    }

    pub fn finish(mut self) -> Result<Model> {
        let (Some(pre), Some(stream)) = (self.pre.take(), self.stream.take()) else {
            return Err(Error::Gguf(format!(
                "file is truncated: {} bytes end inside the header",
                self.received - self.shard_start
            )));
        };
        if self.shard + 1 < self.shards.len() {
            return Err(Error::Gguf(format!(
                "only {} of the {} files of the split model were received",
                self.shard + 1,
                self.shards.len()
            )));
        }
        self.finish_stream(&stream)?;
        let tensors = std::mem::take(&mut self.tensors);
        let sunk = std::mem::take(&mut self.sunk);
        let empty = Bytes::from_vec(Vec::new());
        let bytes = |t: &TensorInfo| {
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
            fingerprint: self.fingerprint,
        })
    }
}

impl Model {
    /// Load a model from bytes already in memory (host only, no GPU).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let mut l = ModelLoader::new(bytes.len() as u64);
        for c in bytes.chunks(16 << 20) {
            l.push(c)?;
        }
        l.finish()
    }

    /// Load a GGUF file from disk onto the host, streaming it tensor by tensor (memory ≈ the
    /// tensors' bytes).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_file(path: &std::path::Path) -> Result<Model> {
        let mut l = ModelLoader::new(file_size(path)?);
        read_file(path, |c| l.push(c))?;
        l.finish()
    }
}

// ----------------------------------------------------------------------------------------------
// A model on its backend
// ----------------------------------------------------------------------------------------------

/// How to load: which engine, and GPU settings.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub backend: BackendPref,
    pub gpu: GpuOptions,
}

/// A loaded model on the engine chosen for it.
pub struct LoadedModel {
    pub model: Rc<Model>,
    /// The model's weights on the GPU, when WebGPU runs it.
    #[cfg(feature = "webgpu")]
    pub gpu: Option<Rc<GpuModel>>,
    pub choice: BackendChoice,
    /// GPU settings for its sessions.
    pub gpu_options: GpuOptions,
}

impl LoadedModel {
    /// A model already on the host, run by the CPU engine.
    pub fn cpu(model: Model) -> LoadedModel {
        LoadedModel {
            model: Rc::new(model),
            #[cfg(feature = "webgpu")]
            gpu: None,
            choice: BackendChoice::cpu("the CPU engine was asked for"),
            gpu_options: GpuOptions::default(),
        }
    }

    /// A model on the host, uploaded to `dev` as well (tests compare both engines on one model).
    #[cfg(feature = "webgpu")]
    pub async fn gpu_copy(model: Rc<Model>, dev: GpuDevice, opts: GpuOptions) -> Result<Self> {
        let choice = BackendChoice {
            kind: BackendKind::WebGpu,
            adapter: Some(dev.adapter_info()),
            fallback: None,
        };
        let gm = GpuModel::with_device(dev, &model.hp, &model.weights, model.tensor_bytes).await?;
        Ok(LoadedModel {
            model,
            gpu: Some(Rc::new(gm)),
            choice,
            gpu_options: opts,
        })
    }

    /// Load a GGUF file for `opts.backend`: on WebGPU the weight matrices go to the GPU tensor by
    /// tensor as the file is read, so the host never holds them (`Model::offloaded`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_file(path: &std::path::Path, opts: &LoadOptions) -> Result<LoadedModel> {
        let l = crate::engine::block_on(Loader::new(file_size(path)?, opts));
        l.read_file(path)
    }

    /// The GPU failed (a lost device, a shader error): the CPU engine runs this model from now
    /// on, if its weights are on the host; otherwise an error says to load it again.
    pub fn lose_gpu(&mut self, why: &str) -> Result<()> {
        #[cfg(feature = "webgpu")]
        {
            self.gpu = None;
        }
        self.choice = BackendChoice::cpu(format!("WebGPU failed: {why}"));
        if self.model.offloaded {
            return Err(Error::Gpu(format!(
                "{why}; the model's weights were on the GPU only: load the model again"
            )));
        }
        Ok(())
    }
}

/// The GPU uploader, shared by the loader (its sink) and [`Loader::finish`].
#[cfg(feature = "webgpu")]
impl TensorSink for Rc<RefCell<GpuUploader>> {
    fn takes(&mut self, t: &TensorInfo) -> Result<bool> {
        self.borrow_mut().takes(t)
    }

    fn write(&mut self, t: &TensorInfo, at: u64, bytes: &[u8]) -> Result<()> {
        self.borrow_mut().write(t, at, bytes)
    }
}

/// Streams a model's bytes onto the backend chosen at [`Loader::new`].
pub struct Loader {
    inner: ModelLoader,
    #[cfg(feature = "webgpu")]
    uploader: Option<Rc<RefCell<GpuUploader>>>,
    choice: BackendChoice,
    gpu_options: GpuOptions,
}

impl Loader {
    /// Decide the engine for a model of `file_size` bytes: WebGPU unless the CPU was asked for,
    /// the GPU cannot be opened, or (on [`BackendPref::Auto`]) the only adapter is a software
    /// renderer. Never fails: [`Loader::choice`] says why the CPU runs.
    pub async fn new(file_size: u64, opts: &LoadOptions) -> Loader {
        Self::new_split(&[file_size], opts).await
    }

    /// [`Loader::new`] for a model split into files of these sizes (pushed in order).
    pub async fn new_split(shards: &[u64], opts: &LoadOptions) -> Loader {
        let cpu = |choice| Loader {
            inner: ModelLoader::new_split(shards),
            #[cfg(feature = "webgpu")]
            uploader: None,
            choice,
            gpu_options: opts.gpu.clone(),
        };
        if opts.backend == BackendPref::Cpu {
            return cpu(BackendChoice::cpu("the CPU engine was chosen"));
        }
        #[cfg(not(feature = "webgpu"))]
        {
            cpu(BackendChoice::cpu("this build has no WebGPU backend"))
        }
        #[cfg(feature = "webgpu")]
        {
            let dev = match GpuDevice::new(&opts.gpu).await {
                Ok(dev) => dev,
                Err(e) => return cpu(BackendChoice::cpu(format!("WebGPU failed: {e}"))),
            };
            if opts.backend == BackendPref::Auto && dev.is_software() {
                return cpu(BackendChoice::cpu(format!(
                    "the only WebGPU adapter is a software renderer ({}), slower than the CPU \
                     engine; choose WebGPU explicitly to use it anyway",
                    dev.adapter_info()
                )));
            }
            let choice = BackendChoice {
                kind: BackendKind::WebGpu,
                adapter: Some(dev.adapter_info()),
                fallback: None,
            };
            let up = Rc::new(RefCell::new(GpuUploader::new(dev)));
            Loader {
                inner: ModelLoader::with_sink(shards, Box::new(up.clone())),
                uploader: Some(up),
                choice,
                gpu_options: opts.gpu.clone(),
            }
        }
    }

    /// The engine this model will run on.
    pub fn choice(&self) -> &BackendChoice {
        &self.choice
    }

    /// Feed the next bytes of the file (any size); tensors complete in them are kept or
    /// uploaded.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.inner.push(chunk)
    }

    /// Bytes pushed so far, of the file size.
    pub fn progress(&self) -> (u64, u64) {
        self.inner.progress()
    }

    /// The validated header, once it has been read.
    pub fn preflight(&self) -> Option<&Preflight> {
        self.inner.preflight()
    }

    /// Every byte is in: build the model (and, on WebGPU, the GPU model from the uploaded
    /// matrices).
    pub async fn finish(self) -> Result<LoadedModel> {
        let model = Rc::new(self.inner.finish()?);
        #[cfg(feature = "webgpu")]
        {
            // The loader (and with it the sink's handle) is gone: the uploader is ours alone.
            let up = match self.uploader {
                Some(up) => Some(
                    Rc::try_unwrap(up)
                        .map_err(|_| Error::Gpu("the GPU uploader is still in use".into()))?
                        .into_inner(),
                ),
                None => None,
            };
            let gpu = match up {
                Some(up) => Some(Rc::new(GpuModel::from_uploader(up, &model).await?)),
                None => None,
            };
            Ok(LoadedModel {
                model,
                gpu,
                choice: self.choice,
                gpu_options: self.gpu_options,
            })
        }
        #[cfg(not(feature = "webgpu"))]
        Ok(LoadedModel {
            model,
            choice: self.choice,
            gpu_options: self.gpu_options,
        })
    }

    /// Push a whole file from disk, then finish (native; blocks).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_file(self, path: &std::path::Path) -> Result<LoadedModel> {
        self.read_files(&[path.to_path_buf()])
    }

    /// Push files from disk one after the other (the parts of a split model), then finish.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_files(mut self, paths: &[std::path::PathBuf]) -> Result<LoadedModel> {
        for p in paths {
            read_file(p, |c| self.push(c))?;
        }
        crate::engine::block_on(self.finish())
    }
}

/// The files of the model at `path`: itself, or for the first part of a split model
/// (`name-00001-of-00003.gguf`) every part, in order. An error names a missing part.
#[cfg(not(target_arch = "wasm32"))]
pub fn model_files(path: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let Some((stem, n)) = path.to_str().and_then(split_name) else {
        return Ok(vec![path.to_path_buf()]);
    };
    let parts: Vec<std::path::PathBuf> = (1..=n)
        .map(|i| std::path::PathBuf::from(format!("{stem}-{i:05}-of-{n:05}.gguf")))
        .collect();
    if let Some(missing) = parts.iter().find(|p| !p.exists()) {
        return Err(Error::Invalid(format!(
            "{} is part of a model split into {n} files, but {} is missing",
            path.display(),
            missing.display()
        )));
    }
    Ok(parts)
}

/// `name-00001-of-00003.gguf` → (`name`, 3) for the first part of a split model.
pub fn split_name(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_suffix(".gguf")?;
    let (head, count) = rest.rsplit_once("-of-")?;
    let (stem, no) = head.rsplit_once('-')?;
    let ok = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(no) || !ok(count) || no != "00001" {
        return None;
    }
    let n: u32 = count.parse().ok()?;
    (n >= 1).then_some((stem, n))
}

/// The size of a file, as a one-line error when it cannot be read.
#[cfg(not(target_arch = "wasm32"))]
pub fn file_size(path: &std::path::Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))
}

/// Feed a file to `push` in 8 MiB chunks.
#[cfg(not(target_arch = "wasm32"))]
fn read_file(path: &std::path::Path, mut push: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    use std::io::Read;
    let io = |e: std::io::Error| Error::Invalid(format!("cannot read {}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        push(&buf[..n])?;
    }
}
