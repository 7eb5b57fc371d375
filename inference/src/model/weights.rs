//! Model weights, still quantized: each matrix is a view of its GGUF blocks.
//!
//! The bytes live either in a memory map of the file (native CLI: resident memory ≈ the pages
//! touched, no copy) or in one owned buffer per tensor (streamed from IndexedDB / File slices).
//! Norm weights and biases are tiny and are kept as f32.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::hparams::{Arch, HParams};
use crate::error::{Error, Result};
use crate::gguf::{GgufHeader, TensorInfo};
use crate::quant::{self, GgmlType};

// ----------------------------------------------------------------------------------------------
// Bytes: a shared, immutable byte range
// ----------------------------------------------------------------------------------------------

/// An immutable range of bytes owned by something shared (a memory map or a Vec).
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl Bytes {
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> Result<Self> {
        if range.start > range.end || range.end > (*owner).as_ref().len() {
            return Err(Error::Invalid(format!(
                "byte range {range:?} outside a buffer of {} bytes",
                (*owner).as_ref().len()
            )));
        }
        Ok(Bytes { owner, range })
    }

    pub fn from_vec(v: Vec<u8>) -> Self {
        let len = v.len();
        Bytes {
            owner: Arc::new(v),
            range: 0..len,
        }
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.range.clone()]
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.range.len())
    }
}

// ----------------------------------------------------------------------------------------------
// QTensor: a quantized matrix
// ----------------------------------------------------------------------------------------------

/// A 2-D weight matrix in its GGUF block layout: `rows` rows of `cols` elements, row-major.
/// GGUF dims are `[cols, rows]` (ggml's ne0 is the contiguous row length).
#[derive(Clone, Debug)]
pub struct QTensor {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: Bytes,
}

impl QTensor {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows
    }

    /// Dequantize row `r` into `out` (len `cols`). `r` must be < rows.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        quant::dequantize(self.ty, &self.data[r * rb..(r + 1) * rb], out);
    }
}

// ----------------------------------------------------------------------------------------------
// The weights of a transformer
// ----------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,              // blk.N.attn_norm.weight      (n_embd)
    pub wq: QTensor,                      // blk.N.attn_q.weight         (n_head * head_dim, n_embd)
    pub wk: QTensor, // blk.N.attn_k.weight         (n_head_kv * head_dim, n_embd)
    pub wv: QTensor, // blk.N.attn_v.weight         (n_head_kv * head_dim, n_embd)
    pub wo: QTensor, // blk.N.attn_output.weight    (n_embd, n_head * head_dim)
    pub bq: Option<Vec<f32>>, // blk.N.attn_q.bias           (n_head * head_dim)      qwen2
    pub bk: Option<Vec<f32>>, // blk.N.attn_k.bias           (n_head_kv * head_dim)   qwen2
    pub bv: Option<Vec<f32>>, // blk.N.attn_v.bias           (n_head_kv * head_dim)   qwen2
    pub q_norm: Option<Vec<f32>>, // blk.N.attn_q_norm.weight    (head_dim)               gemma3
    pub k_norm: Option<Vec<f32>>, // blk.N.attn_k_norm.weight    (head_dim)               gemma3
    pub post_attn_norm: Option<Vec<f32>>, // blk.N.post_attention_norm.weight (n_embd)        gemma3
    pub ffn_norm: Vec<f32>, // blk.N.ffn_norm.weight       (n_embd)
    pub w_gate: QTensor, // blk.N.ffn_gate.weight       (n_ff, n_embd)
    pub w_up: QTensor, // blk.N.ffn_up.weight         (n_ff, n_embd)
    pub w_down: QTensor, // blk.N.ffn_down.weight       (n_embd, n_ff)
    pub post_ffn_norm: Option<Vec<f32>>, // blk.N.post_ffw_norm.weight (n_embd)               gemma3
}

#[derive(Debug)]
pub struct Weights {
    pub tok_embd: QTensor, // token_embd.weight  (n_vocab, n_embd)
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>, // output_norm.weight (n_embd)
    /// output.weight (n_vocab, n_embd); `None` = tied to `tok_embd`.
    pub output: Option<QTensor>,
    pub output_bias: Option<Vec<f32>>, // output.bias (n_vocab)
    /// rope_freqs.weight (head_dim / 2): per-frequency divisors (Llama 3 long-context RoPE).
    pub rope_freqs: Option<Vec<f32>>,
}

/// Looks tensors up by name and checks their shapes against the hyper-parameters.
struct Loader<'a, F: Fn(&TensorInfo) -> Result<Bytes>> {
    by_name: HashMap<&'a str, &'a TensorInfo>,
    bytes: F,
    /// Check names and shapes only; no tensor bytes are touched.
    dry: bool,
    /// Matrices may come back empty: their bytes went straight to a GPU (see `load_offloaded`).
    offloaded: bool,
}

impl<'a, F: Fn(&TensorInfo) -> Result<Bytes>> Loader<'a, F> {
    fn info(&self, name: &str) -> Option<&'a TensorInfo> {
        self.by_name.get(name).copied()
    }

    fn check_dims(t: &TensorInfo, want: &[usize]) -> Result<()> {
        let got: Vec<u64> = t.dims.clone();
        let ok = got.len() == want.len() && got.iter().zip(want).all(|(&g, &w)| g == w as u64);
        if !ok {
            return Err(Error::Model(format!(
                "tensor `{}` has shape {:?}, but the architecture needs {:?}",
                t.name, got, want
            )));
        }
        Ok(())
    }

    /// A matrix with GGUF dims `[cols, rows]`.
    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<QTensor> {
        let t = self
            .info(name)
            .ok_or_else(|| Error::Model(format!("missing tensor `{name}`")))?;
        self.matrix_of(t, cols, rows)
    }

    fn matrix_of(&self, t: &TensorInfo, cols: usize, rows: usize) -> Result<QTensor> {
        Self::check_dims(t, &[cols, rows])?;
        let data = (self.bytes)(t)?;
        let elsewhere = self.offloaded && data.is_empty();
        if !self.dry && !elsewhere && data.len() as u64 != t.size {
            return Err(Error::Model(format!(
                "tensor `{}` data has the wrong size",
                t.name
            )));
        }
        Ok(QTensor {
            name: t.name.clone(),
            ty: t.ty,
            rows,
            cols,
            data,
        })
    }

    fn opt_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        let Some(t) = self.info(name) else {
            return Ok(None);
        };
        Self::check_dims(t, &[n])?;
        let mut v = vec![0f32; n];
        if !self.dry {
            let data = (self.bytes)(t)?;
            quant::dequantize(t.ty, &data, &mut v);
        }
        Ok(Some(v))
    }

    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        self.opt_vector(name, n)?
            .ok_or_else(|| Error::Model(format!("missing tensor `{name}`")))
    }
}

impl Weights {
    /// Build the weights from a parsed header; `bytes` gives each tensor's data.
    pub fn load(
        hp: &HParams,
        header: &GgufHeader,
        bytes: impl Fn(&TensorInfo) -> Result<Bytes>,
    ) -> Result<Self> {
        Self::build(hp, header, bytes, false, false)
    }

    /// Like [`Weights::load`], but a matrix whose bytes were uploaded to a GPU as they streamed
    /// in (`bytes` gives an empty range for it) keeps only its name, type and shape.
    pub fn load_offloaded(
        hp: &HParams,
        header: &GgufHeader,
        bytes: impl Fn(&TensorInfo) -> Result<Bytes>,
    ) -> Result<Self> {
        Self::build(hp, header, bytes, false, true)
    }

    /// Check that every tensor the architecture needs is present with the right shape, without
    /// reading tensor data.
    pub fn check(hp: &HParams, header: &GgufHeader) -> Result<()> {
        let empty = Bytes::from_vec(Vec::new());
        Self::build(hp, header, |_| Ok(empty.clone()), true, false).map(|_| ())
    }

    fn build(
        hp: &HParams,
        header: &GgufHeader,
        bytes: impl Fn(&TensorInfo) -> Result<Bytes>,
        dry: bool,
        offloaded: bool,
    ) -> Result<Self> {
        let by_name = header
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let l = Loader {
            by_name,
            bytes,
            dry,
            offloaded,
        };
        let (e, qd, kvd, ff, hd) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.n_ff, hp.head_dim);
        let gemma = hp.arch == Arch::Gemma3;

        let tok_embd = l.matrix("token_embd.weight", e, hp.n_vocab)?;
        let output = match l.info("output.weight") {
            Some(t) => Some(l.matrix_of(t, e, hp.n_vocab)?),
            None => None,
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let need = |s: &str, n_: usize| l.vector(&n(s), n_);
            let gemma_need = |s: &str, n_: usize| -> Result<Option<Vec<f32>>> {
                if gemma {
                    need(s, n_).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                attn_norm: need("attn_norm.weight", e)?,
                wq: l.matrix(&n("attn_q.weight"), e, qd)?,
                wk: l.matrix(&n("attn_k.weight"), e, kvd)?,
                wv: l.matrix(&n("attn_v.weight"), e, kvd)?,
                wo: l.matrix(&n("attn_output.weight"), qd, e)?,
                bq: l.opt_vector(&n("attn_q.bias"), qd)?,
                bk: l.opt_vector(&n("attn_k.bias"), kvd)?,
                bv: l.opt_vector(&n("attn_v.bias"), kvd)?,
                q_norm: gemma_need("attn_q_norm.weight", hd)?,
                k_norm: gemma_need("attn_k_norm.weight", hd)?,
                post_attn_norm: gemma_need("post_attention_norm.weight", e)?,
                ffn_norm: need("ffn_norm.weight", e)?,
                w_gate: l.matrix(&n("ffn_gate.weight"), e, ff)?,
                w_up: l.matrix(&n("ffn_up.weight"), e, ff)?,
                w_down: l.matrix(&n("ffn_down.weight"), ff, e)?,
                post_ffn_norm: gemma_need("post_ffw_norm.weight", e)?,
            });
        }
        Ok(Weights {
            tok_embd,
            layers,
            output_norm: l.vector("output_norm.weight", e)?,
            output,
            output_bias: l.opt_vector("output.bias", hp.n_vocab)?,
            rope_freqs: l.opt_vector("rope_freqs.weight", hd / 2)?,
        })
    }

    /// The lm head: `output.weight`, or the token embedding when tied.
    pub fn lm_head(&self) -> &QTensor {
        self.output.as_ref().unwrap_or(&self.tok_embd)
    }

    /// Bytes of all matrices (what a backend must hold).
    pub fn matrix_bytes(&self) -> usize {
        let mut n = self.tok_embd.data.len() + self.output.as_ref().map_or(0, |o| o.data.len());
        for l in &self.layers {
            for m in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                n += m.data.len();
            }
        }
        n
    }
}
