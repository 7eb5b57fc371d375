//! Hyper-parameters read from GGUF metadata (`<arch>.*` keys), with llama.cpp's defaults.

use crate::error::{Error, Result};
use crate::gguf::Metadata;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Gemma3,
}

impl Arch {
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "gemma3" => Arch::Gemma3,
            other => {
                return Err(Error::Unsupported(format!(
                    "architecture `{other}` (supported: llama, qwen2, gemma3)"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma3 => "gemma3",
        }
    }
}

#[derive(Clone, Debug)]
pub struct HParams {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub norm_eps: f32,
    /// RoPE base of full-attention layers.
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (Gemma 3).
    pub rope_base_swa: f32,
    /// Linear RoPE scaling of full-attention layers (1 / `rope.scaling.factor`).
    pub rope_freq_scale: f32,
    /// NeoX RoPE (pairs `i, i + d/2`) instead of the original adjacent pairs.
    pub rope_neox: bool,
    /// Sliding window size (0 = none) and which layers use it.
    pub n_swa: usize,
    pub swa_layers: Vec<bool>,
    /// Scale applied to Q before Q·K (Gemma 3: 1/√head_dim) ...
    pub q_scale: f32,
    /// ... and to Q·K itself (others: 1/√head_dim).
    pub kq_scale: f32,
    pub final_logit_softcap: Option<f32>,
}

impl HParams {
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        let arch_name = md.architecture()?;
        let arch = Arch::from_name(arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let req = |k: &str| -> Result<usize> {
            let v = md.require_u64(&key(k))?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0 && v < 1 << 24)
                .ok_or_else(|| Error::Model(format!("`{}` = {v} is out of range", key(k))))
        };
        let n_embd = req("embedding_length")?;
        let n_layer = req("block_count")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = match md.get_u64(&key("attention.head_count_kv")) {
            Some(_) => req("attention.head_count_kv")?,
            None => n_head,
        };
        let n_ff = req("feed_forward_length")?;
        let n_ctx_train = req("context_length")?;
        let head_dim = match md.get_u64(&key("attention.key_length")) {
            Some(_) => req("attention.key_length")?,
            None => n_embd / n_head,
        };
        if let Some(vl) = md.get_u64(&key("attention.value_length")) {
            if vl as usize != head_dim {
                return Err(Error::Unsupported(format!(
                    "value head size {vl} differs from key head size {head_dim}"
                )));
            }
        }
        if let Some(rot) = md.get_u64(&key("rope.dimension_count")) {
            if rot as usize != head_dim {
                return Err(Error::Unsupported(format!(
                    "partial RoPE ({rot} of {head_dim} dims)"
                )));
            }
        }
        if head_dim % 2 != 0 || n_head % n_head_kv != 0 {
            return Err(Error::Model(format!(
                "head layout does not fit: {n_head} heads, {n_head_kv} KV heads, head size {head_dim}"
            )));
        }
        let norm_eps = md.require_f64(&key("attention.layer_norm_rms_epsilon"))? as f32;
        let rope_base = md.get_f64(&key("rope.freq_base")).unwrap_or(10000.0) as f32;
        let rope_freq_scale = match md.get_str(&key("rope.scaling.type")) {
            None | Some("none") => 1.0,
            Some("linear") => {
                let f = md.get_f64(&key("rope.scaling.factor")).unwrap_or(1.0);
                if f > 0.0 {
                    (1.0 / f) as f32
                } else {
                    1.0
                }
            }
            Some(other) => {
                return Err(Error::Unsupported(format!("RoPE scaling type `{other}`")));
            }
        };
        // The vocabulary size comes from the token list (the embedding shape is checked against it).
        let n_vocab = md
            .get_array("tokenizer.ggml.tokens")
            .map(|a| a.len())
            .or_else(|| md.get_u64(&key("vocab_size")).map(|v| v as usize))
            .ok_or_else(|| Error::Model("missing `tokenizer.ggml.tokens`".into()))?;

        let inv_sqrt_hd = 1.0 / (head_dim as f32).sqrt();
        let mut hp = HParams {
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_ctx_train,
            norm_eps,
            rope_base,
            rope_base_swa: rope_base,
            rope_freq_scale,
            rope_neox: arch != Arch::Llama,
            n_swa: 0,
            swa_layers: vec![false; n_layer],
            q_scale: 1.0,
            kq_scale: inv_sqrt_hd,
            final_logit_softcap: None,
        };
        if arch == Arch::Gemma3 {
            // llama.cpp src/models/gemma3.cpp: Q scaled by 1/√head_dim, kq_scale 1; sliding-window
            // layers are `il % pattern < pattern - 1` and use rope.freq_base_swa (default 10000).
            hp.q_scale = inv_sqrt_hd;
            hp.kq_scale = 1.0;
            hp.n_swa = md.get_u64(&key("attention.sliding_window")).unwrap_or(0) as usize;
            let period = md
                .get_u64(&key("attention.sliding_window_pattern"))
                .unwrap_or(6) as usize;
            hp.rope_base_swa = md.get_f64(&key("rope.freq_base_swa")).unwrap_or(10000.0) as f32;
            for (il, s) in hp.swa_layers.iter_mut().enumerate() {
                *s = hp.n_swa > 0 && (period == 0 || il % period < period - 1);
            }
            hp.final_logit_softcap = md
                .get_f64(&key("final_logit_softcapping"))
                .filter(|&c| c > 0.0)
                .map(|c| c as f32);
        }
        Ok(hp)
    }

    /// Width of the K (and V) rows of one token: n_head_kv × head_dim.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of Q (all heads): n_head × head_dim.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// RoPE base and frequency scale of layer `il`.
    pub fn rope_for_layer(&self, il: usize) -> (f32, f32) {
        if self.swa_layers[il] {
            (self.rope_base_swa, 1.0)
        } else {
            (self.rope_base, self.rope_freq_scale)
        }
    }
}
