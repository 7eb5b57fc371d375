//! Model weights, still quantized: each matrix is a view of its GGUF blocks.
//!
//! The bytes live either in a memory map of the file (native CLI: resident memory ≈ the pages
//! touched, no copy) or in one owned buffer per tensor (streamed from IndexedDB / File slices).
//! Norm weights and biases are tiny and are kept as f32.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::hparams::{HParams, NormKind};
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

    /// A sub-range (relative to this one) of the same bytes.
    pub fn slice(&self, r: Range<usize>) -> Result<Self> {
        if r.start > r.end || r.end > self.range.len() {
            return Err(Error::Invalid(format!(
                "byte range {r:?} outside {} bytes",
                self.range.len()
            )));
        }
        Ok(Bytes {
            owner: self.owner.clone(),
            range: self.range.start + r.start..self.range.start + r.end,
        })
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

    /// Rows `rows` of this matrix as a matrix of their own (a view: no copy), named
    /// `<name>[part]` (the parts of a fused QKV or gate+up matrix).
    pub fn rows_view(&self, part: &str, rows: Range<usize>) -> Result<QTensor> {
        let n = rows.len();
        let data = if self.data.is_empty() {
            self.data.clone()
        } else {
            let rb = self.row_bytes();
            self.data.slice(rows.start * rb..rows.end * rb)?
        };
        Ok(QTensor {
            name: format!("{}[{part}]", self.name),
            ty: self.ty,
            rows: n,
            cols: self.cols,
            data,
        })
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

/// A norm's weight, and its bias for LayerNorm.
#[derive(Debug, Clone)]
pub struct Norm {
    pub w: Vec<f32>,         // (dim)
    pub b: Option<Vec<f32>>, // (dim)  LayerNorm only
}

#[derive(Debug)]
pub struct LayerWeights {
    /// blk.N.attn_norm (n_embd); `None`: the block reads the residual as is (Olmo 2).
    pub attn_norm: Option<Norm>,
    pub wq: QTensor, // blk.N.attn_q.weight  (n_head * head_dim, n_embd)  or rows of attn_qkv
    pub wk: QTensor, // blk.N.attn_k.weight  (n_head_kv * head_dim, n_embd)
    pub wv: QTensor, // blk.N.attn_v.weight  (n_head_kv * head_dim, n_embd)
    pub wo: QTensor, // blk.N.attn_output.weight (n_embd, n_head * head_dim)
    pub bq: Option<Vec<f32>>, // attn_q.bias (n_head * head_dim)       qwen2, starcoder2
    pub bk: Option<Vec<f32>>, // attn_k.bias (n_head_kv * head_dim)
    pub bv: Option<Vec<f32>>, // attn_v.bias (n_head_kv * head_dim)
    pub bo: Option<Vec<f32>>, // attn_output.bias (n_embd)             starcoder2
    /// attn_q_norm / attn_k_norm: (head_dim) per head (Gemma 3, Qwen3) or (n_head * head_dim)
    /// over the whole row (Olmo 2).
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub post_attn_norm: Option<Vec<f32>>, // post_attention_norm.weight (n_embd)  gemma, olmo2
    pub ffn_norm: Option<Norm>,           // ffn_norm (n_embd)
    /// ffn_gate.weight (n_ff, n_embd), or the first half of a fused ffn_up (Phi-3); `None`:
    /// a plain MLP, act(up) (StarCoder 2).
    pub w_gate: Option<QTensor>,
    pub w_up: QTensor,                   // ffn_up.weight   (n_ff, n_embd)
    pub w_down: QTensor,                 // ffn_down.weight (n_embd, n_ff)
    pub b_up: Option<Vec<f32>>,          // ffn_up.bias (n_ff)
    pub b_gate: Option<Vec<f32>>,        // ffn_gate.bias (n_ff)
    pub b_down: Option<Vec<f32>>,        // ffn_down.bias (n_embd)
    pub post_ffn_norm: Option<Vec<f32>>, // post_ffw_norm.weight (n_embd)   gemma, olmo2
}

impl LayerWeights {
    /// The matrices of the layer.
    pub fn matrices(&self) -> impl Iterator<Item = &QTensor> {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_up,
            &self.w_down,
        ]
        .into_iter()
        .chain(self.w_gate.as_ref())
    }
}

#[derive(Debug)]
pub struct Weights {
    pub tok_embd: QTensor, // token_embd.weight  (n_vocab, n_embd)
    pub layers: Vec<LayerWeights>,
    pub output_norm: Norm, // output_norm (n_embd)
    /// output.weight (n_vocab, n_embd); `None` = tied to `tok_embd`.
    pub output: Option<QTensor>,
    pub output_bias: Option<Vec<f32>>, // output.bias (n_vocab)
    /// rope_freqs.weight (head_dim / 2): per-frequency divisors (Llama 3 long-context RoPE).
    pub rope_freqs: Option<Vec<f32>>,
    /// rope_factors_long / rope_factors_short (head_dim / 2): LongRoPE (Phi-3), the long ones
    /// for a context beyond the original training context.
    pub rope_long: Option<Vec<f32>>,
    pub rope_short: Option<Vec<f32>>,
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
        // Every layer has tensors: a block count above the number of tensors is a lie, and must
        // not size any allocation (a `Vec` of 2^24 layers is gigabytes).
        if hp.n_layer > header.tensors.len() {
            return Err(Error::Model(format!(
                "the metadata says {} layers, but the file has only {} tensors",
                hp.n_layer,
                header.tensors.len()
            )));
        }
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
        let layer_norm = hp.norm == NormKind::Layer;
        let norm = |name: &str| -> Result<Option<Norm>> {
            let Some(w) = l.opt_vector(&format!("{name}.weight"), e)? else {
                return Ok(None);
            };
            let b = l.opt_vector(&format!("{name}.bias"), e)?;
            if layer_norm != b.is_some() {
                return Err(Error::Model(format!(
                    "`{name}`: {} norm {} a bias",
                    if layer_norm { "a Layer" } else { "an RMS" },
                    if layer_norm { "needs" } else { "has" }
                )));
            }
            Ok(Some(Norm { w, b }))
        };
        let need_norm = |name: &str| {
            norm(name)?.ok_or_else(|| Error::Model(format!("missing tensor `{name}.weight`")))
        };
        // A per-head norm (head_dim) or one over the whole row (width).
        let qk_norm = |name: &str, width: usize| -> Result<Option<Vec<f32>>> {
            match l.info(name) {
                Some(t) if t.dims == [width as u64] => l.opt_vector(name, width),
                Some(_) => l.opt_vector(name, hd),
                None => Ok(None),
            }
        };

        let tok_embd = l.matrix("token_embd.weight", e, hp.n_vocab)?;
        let output = match l.info("output.weight") {
            Some(t) => Some(l.matrix_of(t, e, hp.n_vocab)?),
            None => None,
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let (wq, wk, wv) = match l.info(&n("attn_qkv.weight")) {
                Some(t) => {
                    let qkv = l.matrix_of(t, e, qd + 2 * kvd)?;
                    (
                        qkv.rows_view("q", 0..qd)?,
                        qkv.rows_view("k", qd..qd + kvd)?,
                        qkv.rows_view("v", qd + kvd..qd + 2 * kvd)?,
                    )
                }
                None => (
                    l.matrix(&n("attn_q.weight"), e, qd)?,
                    l.matrix(&n("attn_k.weight"), e, kvd)?,
                    l.matrix(&n("attn_v.weight"), e, kvd)?,
                ),
            };
            let (bq, bk, bv) = match l.opt_vector(&n("attn_qkv.bias"), qd + 2 * kvd)? {
                Some(b) => (
                    Some(b[..qd].to_vec()),
                    Some(b[qd..qd + kvd].to_vec()),
                    Some(b[qd + kvd..].to_vec()),
                ),
                None => (
                    l.opt_vector(&n("attn_q.bias"), qd)?,
                    l.opt_vector(&n("attn_k.bias"), kvd)?,
                    l.opt_vector(&n("attn_v.bias"), kvd)?,
                ),
            };
            // Phi-3: no ffn_gate, ffn_up holds gate and up (n_ff rows each, gate first).
            let (w_gate, w_up) = match l.info(&n("ffn_gate.weight")) {
                Some(t) => (
                    Some(l.matrix_of(t, e, ff)?),
                    l.matrix(&n("ffn_up.weight"), e, ff)?,
                ),
                None => match l.info(&n("ffn_up.weight")) {
                    Some(t) if t.dims == [e as u64, 2 * ff as u64] => {
                        let up = l.matrix_of(t, e, 2 * ff)?;
                        (
                            Some(up.rows_view("gate", 0..ff)?),
                            up.rows_view("up", ff..2 * ff)?,
                        )
                    }
                    _ => (None, l.matrix(&n("ffn_up.weight"), e, ff)?),
                },
            };
            let attn_norm = norm(&n("attn_norm"))?;
            let ffn_norm = norm(&n("ffn_norm"))?;
            let post_attn_norm = l.opt_vector(&n("post_attention_norm.weight"), e)?;
            let post_ffn_norm = l.opt_vector(&n("post_ffw_norm.weight"), e)?;
            if attn_norm.is_none() && post_attn_norm.is_none() {
                return Err(Error::Model(format!(
                    "missing tensor `{}`",
                    n("attn_norm.weight")
                )));
            }
            if ffn_norm.is_none() && post_ffn_norm.is_none() {
                return Err(Error::Model(format!(
                    "missing tensor `{}`",
                    n("ffn_norm.weight")
                )));
            }
            layers.push(LayerWeights {
                attn_norm,
                wq,
                wk,
                wv,
                wo: l.matrix(&n("attn_output.weight"), qd, e)?,
                bq,
                bk,
                bv,
                bo: l.opt_vector(&n("attn_output.bias"), e)?,
                q_norm: qk_norm(&n("attn_q_norm.weight"), qd)?,
                k_norm: qk_norm(&n("attn_k_norm.weight"), kvd)?,
                post_attn_norm,
                ffn_norm,
                w_gate,
                w_up,
                w_down: l.matrix(&n("ffn_down.weight"), ff, e)?,
                b_up: l.opt_vector(&n("ffn_up.bias"), ff)?,
                b_gate: l.opt_vector(&n("ffn_gate.bias"), ff)?,
                b_down: l.opt_vector(&n("ffn_down.bias"), e)?,
                post_ffn_norm,
            });
        }
        // Global factors; some files store them per layer, the first layer's being everyone's.
        let first = |name: &str| -> Result<Option<Vec<f32>>> {
            match l.opt_vector(name, hp.n_rot / 2)? {
                Some(v) => Ok(Some(v)),
                None => l.opt_vector(&format!("blk.0.{name}"), hp.n_rot / 2),
            }
        };
        Ok(Weights {
            tok_embd,
            layers,
            output_norm: need_norm("output_norm")?,
            output,
            output_bias: l.opt_vector("output.bias", hp.n_vocab)?,
            rope_freqs: first("rope_freqs.weight")?,
            rope_long: first("rope_factors_long.weight")?,
            rope_short: first("rope_factors_short.weight")?,
        })
    }

    /// The RoPE frequency factors for a context of `n_ctx` positions: `rope_freqs`, else
    /// LongRoPE's long factors beyond the original training context and the short ones within
    /// (llama.cpp `get_rope_factors`).
    pub fn rope_factors(&self, hp: &HParams, n_ctx: usize) -> Option<&[f32]> {
        if let Some(f) = &self.rope_freqs {
            return Some(f);
        }
        if hp.long_rope(n_ctx) {
            self.rope_long.as_deref()
        } else {
            self.rope_short.as_deref()
        }
    }

    /// The lm head: `output.weight`, or the token embedding when tied.
    pub fn lm_head(&self) -> &QTensor {
        self.output.as_ref().unwrap_or(&self.tok_embd)
    }

    /// Bytes of all matrices (what a backend must hold).
    pub fn matrix_bytes(&self) -> usize {
        let mut n = self.tok_embd.data.len() + self.output.as_ref().map_or(0, |o| o.data.len());
        for l in &self.layers {
            n += l.matrices().map(|m| m.data.len()).sum::<usize>();
        }
        n
    }
}
