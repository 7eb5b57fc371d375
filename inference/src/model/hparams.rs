//! Hyper-parameters read from GGUF metadata (`<arch>.*` keys), with llama.cpp's defaults.
//!
//! What sets one architecture apart from another is data here — an [`ArchSpec`] per
//! architecture (norm kind, activation, RoPE ordering, scales, sliding-window pattern) and a
//! per-layer description ([`HParams::swa_layers`], [`HParams::rope_layers`]) — so the backends run
//! one forward pass without asking which architecture they run. Optional tensors (biases, q/k
//! norms, post-norms, fused matrices) are picked up by [`super::weights`] from the file itself.

use crate::error::{Error, Result};
use crate::gguf::{Array, Metadata};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma2,
    Gemma3,
    Phi3,
    SmolLm3,
    Granite,
    Olmo2,
    Starcoder2,
    Mistral3,
}

/// Normalization of a block's input (and of the final output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// x / rms(x) · w
    Rms,
    /// (x − mean) / std · w + b
    Layer,
}

/// The FFN's activation: gated (`act(gate) · up`) when the layer has a gate, else `act(up)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation.
    Gelu,
}

/// What an architecture changes in the transformer, following llama.cpp's `src/models/<arch>.cpp`.
#[derive(Clone, Copy, Debug)]
pub struct ArchSpec {
    pub arch: Arch,
    pub name: &'static str,
    /// NeoX RoPE (pairs `i, i + d/2`) instead of the original adjacent pairs.
    pub rope_neox: bool,
    pub norm: NormKind,
    pub act: Activation,
    /// Embeddings × √n_embd (Gemma).
    pub embd_scale_sqrt: bool,
    /// Q × attention scale before Q·K, and Q·K not scaled again (Gemma, Phi-3).
    pub scale_q: bool,
    /// Sliding-window pattern when the file has a window: every `n`th layer is global
    /// (`il % n == n − 1`); 0 = every layer slides; `None` = the architecture has no window.
    pub swa_pattern: Option<u32>,
    /// Default window when the file gives none (Gemma 2: 4096).
    pub swa_default: usize,
    /// Every `n`th layer (`(il + 1) % n == 0`) has no RoPE (SmolLM3).
    pub no_rope_every: usize,
    /// Reads granite's embedding / residual / attention / logit scales.
    pub granite_scales: bool,
    /// Attention soft-capping (`attn_logit_softcapping`, Gemma 2).
    pub attn_softcap: bool,
    /// Final logit soft-capping (`final_logit_softcapping`).
    pub final_softcap: bool,
    /// Attention temperature tuning per position (`attention.temperature_scale`, Ministral 3).
    pub attn_temperature: bool,
}

const LLAMA: ArchSpec = ArchSpec {
    arch: Arch::Llama,
    name: "llama",
    rope_neox: false,
    norm: NormKind::Rms,
    act: Activation::Silu,
    embd_scale_sqrt: false,
    scale_q: false,
    swa_pattern: None,
    swa_default: 0,
    no_rope_every: 0,
    granite_scales: false,
    attn_softcap: false,
    final_softcap: false,
    attn_temperature: false,
};

/// Every supported architecture (`general.architecture`), as data.
pub const ARCHS: &[ArchSpec] = &[
    LLAMA,
    ArchSpec {
        arch: Arch::Qwen2,
        name: "qwen2",
        rope_neox: true,
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::Qwen3,
        name: "qwen3",
        rope_neox: true,
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::Gemma2,
        name: "gemma2",
        rope_neox: true,
        act: Activation::Gelu,
        embd_scale_sqrt: true,
        scale_q: true,
        swa_pattern: Some(2),
        swa_default: 4096,
        attn_softcap: true,
        final_softcap: true,
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::Gemma3,
        name: "gemma3",
        rope_neox: true,
        act: Activation::Gelu,
        embd_scale_sqrt: true,
        scale_q: true,
        swa_pattern: Some(6),
        final_softcap: true,
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::Phi3,
        name: "phi3",
        rope_neox: true,
        scale_q: true,
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::SmolLm3,
        name: "smollm3",
        no_rope_every: 4,
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::Granite,
        name: "granite",
        granite_scales: true,
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::Olmo2,
        name: "olmo2",
        rope_neox: true,
        swa_pattern: Some(4),
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::Starcoder2,
        name: "starcoder2",
        rope_neox: true,
        norm: NormKind::Layer,
        act: Activation::Gelu,
        ..LLAMA
    },
    ArchSpec {
        arch: Arch::Mistral3,
        name: "mistral3",
        attn_temperature: true,
        ..LLAMA
    },
];

impl Arch {
    pub fn from_name(name: &str) -> Result<Self> {
        ARCHS
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.arch)
            .ok_or_else(|| {
                let names: Vec<&str> = ARCHS.iter().map(|s| s.name).collect();
                Error::Unsupported(format!(
                    "architecture `{name}` (supported: {})",
                    names.join(", ")
                ))
            })
    }

    pub fn spec(self) -> &'static ArchSpec {
        ARCHS
            .iter()
            .find(|s| s.arch == self)
            .expect("every Arch has an ArchSpec")
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// RoPE frequency scaling beyond a plain linear factor (llama.cpp `rope_yarn` + `attn_factor`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeScaling {
    /// YaRN extrapolation mix (0 = off; 1 for `rope.scaling.type = yarn`).
    pub ext_factor: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// The training context the scaling extends (`rope.scaling.original_context_length`).
    pub n_ctx_orig: usize,
    /// Magnitude factor on cos/sin (YaRN's and `rope.scaling.attn_factor`, LongRoPE).
    pub attn_factor: f32,
}

/// Ministral 3 / Llama 4 attention temperature: Q × (1 + scale · ln(⌊pos / floor⌋ + 1)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnTemperature {
    pub scale: f32,
    pub floor: usize,
}

impl AttnTemperature {
    pub fn at(&self, pos: usize) -> f32 {
        (((pos / self.floor) as f64 + 1.0).ln() * self.scale as f64 + 1.0) as f32
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
    /// Dims of each head that RoPE rotates (the first n_rot; partial RoPE: < head_dim).
    pub n_rot: usize,
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub norm_eps: f32,
    pub norm: NormKind,
    pub act: Activation,
    /// RoPE base of full-attention layers.
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (Gemma 3).
    pub rope_base_swa: f32,
    /// Linear RoPE scaling of full-attention layers (1 / `rope.scaling.factor`) ...
    pub rope_freq_scale: f32,
    /// ... and of sliding-window layers (Gemma 3, Olmo 3: 1; Gemma 2: the same).
    pub rope_freq_scale_swa: f32,
    pub rope_scaling: RopeScaling,
    /// NeoX RoPE (pairs `i, i + d/2`) instead of the original adjacent pairs.
    pub rope_neox: bool,
    /// Sliding window size (0 = none) and which layers use it.
    pub n_swa: usize,
    pub swa_layers: Vec<bool>,
    /// Which layers rotate Q and K (SmolLM3 skips every 4th).
    pub rope_layers: Vec<bool>,
    /// Embeddings × this (Gemma: √n_embd; Granite: `embedding_scale`).
    pub embd_scale: f32,
    /// Attention and FFN outputs × this before the residual add (Granite).
    pub residual_scale: f32,
    /// Logits × this (Granite: 1 / `logit_scale`).
    pub logit_scale: f32,
    /// Scale applied to Q before Q·K (Gemma, Phi-3: 1/√head_dim) ...
    pub q_scale: f32,
    /// ... and to Q·K itself (others: 1/√head_dim), after soft-capping.
    pub kq_scale: f32,
    /// Attention scores soft-capped as cap · tanh(s / cap) (Gemma 2).
    pub attn_softcap: Option<f32>,
    pub final_logit_softcap: Option<f32>,
    pub attn_temperature: Option<AttnTemperature>,
}

/// `key` as a finite number, `default` when absent; an error when it holds anything else
/// (a string, NaN, ±∞), rather than silently running with the default.
fn number_or(md: &Metadata, key: &str, default: f64) -> Result<f64> {
    match md.get(key) {
        None => Ok(default),
        Some(_) => match md.get_f64(key) {
            Some(v) if v.is_finite() => Ok(v),
            Some(v) => Err(Error::Model(format!("`{key}` must be finite (found {v})"))),
            None => Err(md.wrong_type(key, "number")),
        },
    }
}

/// A value that must be > 0 (RoPE bases, scaling factors): 0 or less turns every angle into
/// NaN or ∞, and the model would print nothing instead of failing.
fn positive(key: &str, v: f64) -> Result<f32> {
    let f = v as f32;
    if !(f.is_finite() && f > 0.0) {
        return Err(Error::Model(format!(
            "`{key}` must be a positive number (found {v})"
        )));
    }
    Ok(f)
}

/// Buffer sizes derived from the sizes (each < 2^24 alone) must fit in memory: checked here,
/// once, so that nothing later multiplies them unchecked into an overflow or a huge allocation.
/// (The embedding table needs no check: its shape is the file's tensor, and n_vocab × n_embd
/// < 2^48.)
fn check_products(
    n_layer: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    n_ctx_train: usize,
) -> Result<()> {
    // One row of activations is an f32 buffer: at most 2 GiB (wasm32's limit per allocation).
    const MAX_ELEMS: u64 = i32::MAX as u64 / 4;
    let p = |a: usize, b: usize| (a as u64).saturating_mul(b as u64);
    let checks = [
        ("attention width (heads × head size)", p(n_head, head_dim)),
        ("KV width (KV heads × head size)", p(n_head_kv, head_dim)),
    ];
    for (what, n) in checks {
        if n > MAX_ELEMS {
            return Err(Error::Model(format!(
                "the {what} is {n} values: too large for this engine"
            )));
        }
    }
    // The KV cache of the whole training context (a session may ask for less).
    let kv = p(n_layer, n_ctx_train).saturating_mul(p(n_head_kv, head_dim));
    if kv > u64::MAX / 16 {
        return Err(Error::Model(format!(
            "the KV cache ({n_layer} layers × {n_ctx_train} positions × {} values) overflows",
            p(n_head_kv, head_dim)
        )));
    }
    Ok(())
}

/// A positive size read from `key`: an integer, or an array whose entries are all equal (a
/// per-layer array that varies is not supported).
fn size_key(md: &Metadata, key: &str) -> Result<Option<usize>> {
    let v = match md.get_array(key) {
        Some(a) => {
            let vals =
                array_u64(a).ok_or_else(|| Error::Model(format!("`{key}` is not numeric")))?;
            match vals.first() {
                Some(&first) if vals.iter().all(|&v| v == first) => first,
                Some(_) => {
                    return Err(Error::Unsupported(format!(
                        "per-layer values of `{key}` (layers of different shapes)"
                    )))
                }
                None => return Err(Error::Model(format!("`{key}` is an empty array"))),
            }
        }
        None => match md.get_u64(key) {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0 && v < 1 << 24)
        .map(Some)
        .ok_or_else(|| Error::Model(format!("`{key}` = {v} is out of range")))
}

fn array_u64(a: &Array) -> Option<Vec<u64>> {
    Some(match a {
        Array::U8(v) => v.iter().map(|&x| x as u64).collect(),
        Array::I8(v) => v.iter().map(|&x| x.max(0) as u64).collect(),
        Array::U16(v) => v.iter().map(|&x| x as u64).collect(),
        Array::I16(v) => v.iter().map(|&x| x.max(0) as u64).collect(),
        Array::U32(v) => v.iter().map(|&x| x as u64).collect(),
        Array::I32(v) => v.iter().map(|&x| x.max(0) as u64).collect(),
        Array::U64(v) => v.clone(),
        Array::I64(v) => v.iter().map(|&x| x.max(0) as u64).collect(),
        Array::Bool(v) => v.iter().map(|&x| x as u64).collect(),
        _ => return None,
    })
}

impl HParams {
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        let arch_name = md.architecture()?;
        let arch = Arch::from_name(arch_name)?;
        let spec = arch.spec();
        let key = |k: &str| format!("{arch_name}.{k}");
        let req = |k: &str| -> Result<usize> {
            size_key(md, &key(k))?.ok_or_else(|| md.wrong_type(&key(k), "non-negative integer"))
        };
        let opt = |k: &str| size_key(md, &key(k));
        let f64_or = |k: &str, d: f64| number_or(md, &key(k), d);
        let n_embd = req("embedding_length")?;
        let n_layer = req("block_count")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = opt("attention.head_count_kv")?.unwrap_or(n_head);
        let n_ff = req("feed_forward_length")?;
        let n_ctx_train = req("context_length")?;
        let head_dim = opt("attention.key_length")?.unwrap_or(n_embd / n_head);
        if let Some(vl) = opt("attention.value_length")? {
            if vl != head_dim {
                return Err(Error::Unsupported(format!(
                    "value head size {vl} differs from key head size {head_dim}"
                )));
            }
        }
        let n_rot = opt("rope.dimension_count")?.unwrap_or(head_dim);
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(Error::Model(format!(
                "RoPE over {n_rot} dims of a {head_dim}-dim head"
            )));
        }
        if head_dim % 2 != 0 || n_head % n_head_kv != 0 {
            return Err(Error::Model(format!(
                "head layout does not fit: {n_head} heads, {n_head_kv} KV heads, head size {head_dim}"
            )));
        }
        let eps_key = key(match spec.norm {
            NormKind::Rms => "attention.layer_norm_rms_epsilon",
            NormKind::Layer => "attention.layer_norm_epsilon",
        });
        let norm_eps = md.require_f64(&eps_key)? as f32;
        if !(norm_eps.is_finite() && norm_eps >= 0.0) {
            return Err(Error::Model(format!(
                "`{eps_key}` must be a finite number ≥ 0 (found {norm_eps})"
            )));
        }
        let rope_base = positive(&key("rope.freq_base"), f64_or("rope.freq_base", 10000.0)?)?;
        let scaling_type = md.get_str(&key("rope.scaling.type")).unwrap_or("linear");
        let factor_key = [key("rope.scaling.factor"), key("rope.scale_linear")]
            .into_iter()
            .find(|k| md.get(k).is_some());
        let factor = match &factor_key {
            // 0 means "no scaling" in llama.cpp's converters; negative or NaN is broken.
            Some(k) => Some(number_or(md, k, 0.0)?)
                .filter(|&f| f != 0.0)
                .map(|f| positive(k, f))
                .transpose()?
                .map(f64::from),
            None => None,
        };
        let rope_freq_scale = match (scaling_type, factor) {
            ("none", _) | (_, None) => 1.0,
            ("linear" | "yarn" | "longrope", Some(f)) => (1.0 / f) as f32,
            (other, _) => {
                return Err(Error::Unsupported(format!("RoPE scaling type `{other}`")));
            }
        };
        if !matches!(scaling_type, "none" | "linear" | "yarn" | "longrope") {
            return Err(Error::Unsupported(format!(
                "RoPE scaling type `{scaling_type}`"
            )));
        }
        let n_ctx_orig = opt("rope.scaling.original_context_length")?.unwrap_or(n_ctx_train);
        let rope_scaling = rope_scaling(md, &key, scaling_type, rope_freq_scale, n_ctx_orig);
        // The vocabulary size comes from the token list (the embedding shape is checked against it).
        let n_vocab = md
            .get_array("tokenizer.ggml.tokens")
            .map(|a| a.len())
            .or_else(|| md.get_u64(&key("vocab_size")).map(|v| v as usize))
            .ok_or_else(|| Error::Model("missing `tokenizer.ggml.tokens`".into()))?;
        check_products(n_layer, n_head, n_head_kv, head_dim, n_ctx_train)?;

        let inv_sqrt_hd = 1.0 / (head_dim as f32).sqrt();
        let mut hp = HParams {
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            n_ff,
            n_ctx_train,
            norm_eps,
            norm: spec.norm,
            act: spec.act,
            rope_base,
            rope_base_swa: rope_base,
            rope_freq_scale,
            rope_freq_scale_swa: if arch == Arch::Gemma2 {
                rope_freq_scale
            } else {
                1.0
            },
            rope_scaling,
            rope_neox: spec.rope_neox,
            n_swa: 0,
            swa_layers: vec![false; n_layer],
            rope_layers: (0..n_layer)
                .map(|il| spec.no_rope_every == 0 || (il + 1) % spec.no_rope_every != 0)
                .collect(),
            embd_scale: if spec.embd_scale_sqrt {
                (n_embd as f32).sqrt()
            } else {
                1.0
            },
            residual_scale: 1.0,
            logit_scale: 1.0,
            q_scale: 1.0,
            kq_scale: inv_sqrt_hd,
            attn_softcap: None,
            final_logit_softcap: None,
            attn_temperature: None,
        };
        if spec.scale_q {
            // llama.cpp gemma2/gemma3/phi3: Q × f_attention_scale, kq_scale 1. Gemma's 27B models
            // (46 / 62 layers) scale by 1/√(n_embd / n_head) instead of 1/√head_dim.
            let big_gemma = matches!((arch, n_layer), (Arch::Gemma2, 46) | (Arch::Gemma3, 62));
            hp.q_scale = if big_gemma {
                1.0 / ((n_embd / n_head) as f32).sqrt()
            } else {
                inv_sqrt_hd
            };
            hp.kq_scale = 1.0;
        }
        if let Some(default_pattern) = spec.swa_pattern {
            hp.n_swa = opt("attention.sliding_window")?.unwrap_or(spec.swa_default);
            // Olmo 2 slides only when the file gives a window.
            if arch == Arch::Olmo2 && opt("attention.sliding_window")?.is_none() {
                hp.n_swa = 0;
            }
            let swa_default = if arch == Arch::Gemma3 {
                10000.0
            } else {
                rope_base as f64
            };
            hp.rope_base_swa = positive(
                &key("rope.freq_base_swa"),
                f64_or("rope.freq_base_swa", swa_default)?,
            )?;
            let pattern_key = key("attention.sliding_window_pattern");
            let per_layer = md.get_array(&pattern_key).and_then(array_u64);
            for (il, s) in hp.swa_layers.iter_mut().enumerate() {
                *s = hp.n_swa > 0
                    && match &per_layer {
                        Some(v) => v.get(il).is_some_and(|&x| x != 0),
                        None => {
                            let n = md
                                .get_u64(&pattern_key)
                                .map_or(default_pattern as usize, |p| p as usize);
                            n == 0 || il % n < n - 1
                        }
                    };
            }
        }
        if spec.attn_softcap {
            hp.attn_softcap =
                Some(f64_or("attn_logit_softcapping", 50.0)? as f32).filter(|&c| c > 0.0);
        }
        if spec.final_softcap {
            let default = if arch == Arch::Gemma2 { 30.0 } else { 0.0 };
            hp.final_logit_softcap =
                Some(f64_or("final_logit_softcapping", default)? as f32).filter(|&c| c > 0.0);
        }
        if spec.granite_scales {
            let logit = f64_or("logit_scale", 1.0)?;
            if logit == 0.0 {
                return Err(Error::Model("`logit_scale` is 0".into()));
            }
            hp.logit_scale = (1.0 / logit) as f32;
            hp.residual_scale = md
                .get_f64(&key("residual_scale"))
                .filter(|&s| s != 0.0)
                .unwrap_or(1.0) as f32;
            hp.embd_scale = md
                .get_f64(&key("embedding_scale"))
                .filter(|&s| s != 0.0)
                .unwrap_or(1.0) as f32;
            if let Some(s) = md.get_f64(&key("attention.scale")).filter(|&s| s != 0.0) {
                hp.kq_scale = s as f32;
            }
            // A Granite file whose RoPE was not fine-tuned rotates nothing (llama.cpp
            // `rope_pattern`).
            if md.get_bool(&key("rope.scaling.finetuned")) == Some(false) {
                hp.rope_layers.iter_mut().for_each(|r| *r = false);
            }
        }
        if spec.attn_temperature {
            if let Some(s) = md
                .get_f64(&key("attention.temperature_scale"))
                .filter(|&s| s != 0.0)
            {
                hp.attn_temperature = Some(AttnTemperature {
                    scale: s as f32,
                    floor: n_ctx_orig,
                });
            }
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
            (self.rope_base_swa, self.rope_freq_scale_swa)
        } else {
            (self.rope_base, self.rope_freq_scale)
        }
    }

    /// Whether a session of `n_ctx` positions uses LongRoPE's long factors: beyond the original
    /// training context, counted as llama.cpp does (the context padded to 256).
    pub fn long_rope(&self, n_ctx: usize) -> bool {
        n_ctx.next_multiple_of(256) > self.rope_scaling.n_ctx_orig
    }

    /// The YaRN / attention-factor scaling of layer `il` (sliding-window layers: none).
    pub fn rope_scaling_for_layer(&self, il: usize) -> RopeScaling {
        if self.swa_layers[il] {
            RopeScaling {
                ext_factor: 0.0,
                attn_factor: 1.0,
                ..self.rope_scaling
            }
        } else {
            self.rope_scaling
        }
    }
}

/// llama.cpp's YaRN settings (`llama_context` constructor): the extrapolation mix is on for
/// `yarn`; the magnitude factor is YaRN's 1 + 0.1·ln(factor) corrected by `yarn_log_multiplier`,
/// times `rope.scaling.attn_factor` (LongRoPE files carry it).
fn rope_scaling(
    md: &Metadata,
    key: &dyn Fn(&str) -> String,
    scaling_type: &str,
    freq_scale: f32,
    n_ctx_orig: usize,
) -> RopeScaling {
    let get = |k: &str, d: f64| md.get_f64(&key(k)).unwrap_or(d) as f32;
    let ext_factor = if scaling_type == "yarn" { 1.0 } else { 0.0 };
    let mut attn_factor = get("rope.scaling.attn_factor", 1.0);
    if ext_factor != 0.0 {
        // The rope op multiplies by 1 + 0.1·ln(1/freq_scale) itself; llama.cpp divides that out
        // again unless `yarn_log_multiplier` asks for mscale / mscale_all_dims.
        let factor = 1.0 / freq_scale;
        let mscale = |m: f32| {
            if factor <= 1.0 {
                1.0
            } else {
                0.1 * m * factor.ln() + 1.0
            }
        };
        let log_mul = get("rope.scaling.yarn_log_multiplier", 0.0);
        let yarn = if log_mul != 0.0 {
            mscale(1.0) / mscale(log_mul)
        } else {
            mscale(1.0)
        };
        attn_factor *= yarn / (1.0 + 0.1 * factor.ln());
    }
    RopeScaling {
        ext_factor,
        beta_fast: get("rope.scaling.yarn_beta_fast", 32.0),
        beta_slow: get("rope.scaling.yarn_beta_slow", 1.0),
        n_ctx_orig,
        attn_factor,
    }
}
