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

/// The first header parse waits for this many bytes (or the whole file).
const MIN_PARSE: usize = 64 << 10;

/// Takes a tensor's bytes as they stream in (e.g. uploads a matrix to the GPU); `Ok(true)` means
/// it kept them, so the loader does not.
pub type TensorSink = Box<dyn FnMut(&TensorInfo, &[u8]) -> Result<bool>>;

/// Builds a [`Model`] from file bytes pushed in order, in chunks of any size.
pub struct ModelLoader {
    file_size: u64,
    received: u64,
    prefix: Vec<u8>,
    /// Prefix length at the last failed header parse: the next attempt waits until the prefix
    /// has doubled (or the file is complete), so parsing a header that arrives in many small
    /// chunks costs O(header), not O(header²).
    parsed_at: usize,
    pre: Option<Preflight>,
    stream: Option<TensorStream>,
    tensors: HashMap<String, Bytes>,
    sink: Option<TensorSink>,
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
        ModelLoader {
            file_size,
            received: 0,
            prefix: Vec::new(),
            parsed_at: 0,
            pre: None,
            stream: None,
            tensors: HashMap::new(),
            sink: None,
            sunk: HashSet::new(),
            host_only: HashSet::new(),
            fingerprint: fnv(0xcbf2_9ce4_8422_2325, &file_size.to_le_bytes()),
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
        // Until the header is complete, collect bytes; then the stream takes them all.
        let mut first = None;
        if self.stream.is_none() {
            let Some(header) = self.collect_header(chunk)? else {
                return Ok(());
            };
            let pre = Preflight::new(header)?;
            self.host_only = fused_matrices(&pre.header);
            self.stream = Some(TensorStream::new(&pre.header, 0));
            self.pre = Some(pre);
            first = Some(std::mem::take(&mut self.prefix));
        }
        let tensors = &mut self.tensors;
        let sink = &mut self.sink;
        let sunk = &mut self.sunk;
        let fp = &mut self.fingerprint;
        let host_only = &self.host_only;
        let mut keep = |t: &TensorInfo, d: std::borrow::Cow<'_, [u8]>| {
            *fp = fnv(*fp, t.name.as_bytes());
            *fp = fnv(*fp, t.ty.name().as_bytes());
            for dim in &t.dims {
                *fp = fnv(*fp, &dim.to_le_bytes());
            }
            *fp = fnv(*fp, &d[..d.len().min(256)]);
            if let Some(sink) = sink.as_mut() {
                if !host_only.contains(&t.name) && sink(t, &d)? {
                    sunk.insert(t.name.clone());
                    return Ok(());
                }
            }
            tensors.insert(t.name.clone(), Bytes::from_vec(d.into_owned()));
            Ok(())
        };
        let Some(s) = &mut self.stream else {
            return Ok(());
        };
        s.push(first.as_deref().unwrap_or(chunk), &mut keep)
    }

    /// Buffer `chunk` and try to parse the header when the prefix has doubled since the last
    /// try; an error once the prefix is past what a header may be ([`MAX_HEADER_BYTES`]).
    fn collect_header(&mut self, chunk: &[u8]) -> Result<Option<GgufHeader>> {
        self.prefix.extend_from_slice(chunk);
        let len = self.prefix.len();
        let complete = len as u64 >= self.file_size;
        if !complete && len < self.parsed_at.saturating_mul(2).max(MIN_PARSE) {
            return Ok(None);
        }
        self.parsed_at = len;
        let header = GgufHeader::parse(&self.prefix, self.file_size)?;
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
                self.received
            )));
        };
        stream.finish()?;
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
        let cpu = |choice| Loader {
            inner: ModelLoader::new(file_size),
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
            let sink = up.clone();
            Loader {
                inner: ModelLoader::with_sink(
                    file_size,
                    Box::new(move |t, d| sink.borrow_mut().take(t, d)),
                ),
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
    pub fn read_file(mut self, path: &std::path::Path) -> Result<LoadedModel> {
        read_file(path, |c| self.push(c))?;
        crate::engine::block_on(self.finish())
    }
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
