//! Rotary position embeddings, computed once for both backends (the GPU uploads these tables).
//!
//! An angle is linear in the position: θᵢ(pos) = pos · fᵢ, with fᵢ = base^(−2i/d) / factorᵢ ×
//! the linear scale, or with YaRN a per-frequency mix of the scaled and unscaled frequency
//! (llama.cpp `rope_yarn`). Q and K are rotated and multiplied by a magnitude `mscale` (YaRN,
//! LongRoPE's attention factor; 1 otherwise).

use super::hparams::{HParams, RopeScaling};

/// Rotary position embedding for one head of `head_dim` values.
pub struct Rope {
    /// The frequency fᵢ of each pair, i in 0..d/2, precomputed once per layer.
    inv_freq: Vec<f32>,
    /// Magnitude applied with the rotation (`attn_factor`, × YaRN's 1 + 0.1·ln(1/scale)).
    mscale: f32,
    neox: bool,
}

impl Rope {
    /// A rope over the first `head_dim` (= n_rot) dims of a head.
    pub fn new(
        head_dim: usize,
        base: f32,
        freq_scale: f32,
        neox: bool,
        factors: Option<&[f32]>,
    ) -> Self {
        let none = RopeScaling {
            ext_factor: 0.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: 0,
            attn_factor: 1.0,
        };
        Self::scaled(head_dim, base, freq_scale, &none, neox, factors)
    }

    /// A rope with YaRN / attention-factor scaling.
    pub fn scaled(
        head_dim: usize,
        base: f32,
        freq_scale: f32,
        sc: &RopeScaling,
        neox: bool,
        factors: Option<&[f32]>,
    ) -> Self {
        let half = head_dim / 2;
        let (low, high) = yarn_corr_dims(head_dim, sc.n_ctx_orig, base, sc.beta_fast, sc.beta_slow);
        let fs = freq_scale as f64;
        let inv_freq = (0..half)
            .map(|i| {
                let extrap = (base as f64).powf(-2.0 * i as f64 / head_dim as f64)
                    / factors.map_or(1.0, |ff| ff[i] as f64);
                let mix = if sc.ext_factor != 0.0 {
                    let y = (i as f32 - low) / (high - low).max(0.001);
                    ((1.0 - y.clamp(0.0, 1.0)) * sc.ext_factor) as f64
                } else {
                    0.0
                };
                (extrap * (fs * (1.0 - mix) + mix)) as f32
            })
            .collect();
        let mut mscale = sc.attn_factor;
        if sc.ext_factor != 0.0 {
            mscale *= 1.0 + 0.1 * (1.0 / freq_scale).ln();
        }
        Rope {
            inv_freq,
            mscale,
            neox,
        }
    }

    /// No rotation at all (cos 1, sin 0): what a layer without RoPE does, as a table.
    pub fn identity(head_dim: usize) -> Self {
        Rope {
            inv_freq: vec![0.0; head_dim / 2],
            mscale: 1.0,
            neox: false,
        }
    }

    /// The rope of layer `il` (`None` for a layer without RoPE), with the frequency factors the
    /// model has (`rope_freqs`, or LongRoPE's long / short factors for this context size).
    pub fn for_layer(hp: &HParams, il: usize, factors: Option<&[f32]>) -> Option<Rope> {
        if !hp.rope_layers[il] {
            return None;
        }
        let (base, scale) = hp.rope_for_layer(il);
        let sc = hp.rope_scaling_for_layer(il);
        Some(Self::scaled(
            hp.n_rot,
            base,
            scale,
            &sc,
            hp.rope_neox,
            factors,
        ))
    }

    /// Rotate `x` (a head) for position `pos` and scale it by the magnitude: adjacent pairs
    /// (2i, 2i+1) for the original ordering, (i, i + n_rot/2) for NeoX, over the first n_rot
    /// dims; with partial RoPE the rest pass through untouched (as in ggml).
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        self.turn(x, pos as f32, self.mscale);
    }

    /// (cos, sin) of each pair's angle at `pos` (which may be negative), interleaved:
    /// (head_dim / 2, 2) values, exactly those [`Rope::rotate`] uses.
    pub fn cos_sin(&self, pos: f32) -> Vec<f32> {
        self.table(pos, 1.0)
    }

    /// (cos, sin) × the magnitude, as [`Rope::apply`] uses them (the GPU's RoPE tables).
    pub fn cos_sin_scaled(&self, pos: f32) -> Vec<f32> {
        self.table(pos, self.mscale)
    }

    fn table(&self, pos: f32, m: f32) -> Vec<f32> {
        self.inv_freq
            .iter()
            .flat_map(|&f| {
                let (sin, cos) = (pos * f).sin_cos();
                [cos * m, sin * m]
            })
            .collect()
    }

    /// Rotate `x` by `pos` positions, which may be negative, without the magnitude: a key stored
    /// at position p and rotated by -d is the key at p - d (the context shift), since RoPE angles
    /// are linear in the position.
    pub fn rotate(&self, x: &mut [f32], pos: f32) {
        self.turn(x, pos, 1.0);
    }

    fn turn(&self, x: &mut [f32], pos: f32, m: f32) {
        let half = self.inv_freq.len();
        for (i, &f) in self.inv_freq.iter().enumerate() {
            let (sin, cos) = (pos * f).sin_cos();
            let (cos, sin) = (cos * m, sin * m);
            let (a, b) = if self.neox {
                (i, i + half)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (x[a], x[b]);
            x[a] = x0 * cos - x1 * sin;
            x[b] = x0 * sin + x1 * cos;
        }
    }
}

/// YaRN's correction range (ggml `ggml_rope_yarn_corr_dims`): pairs below `low` keep their
/// frequency, above `high` are fully interpolated.
fn yarn_corr_dims(d: usize, n_ctx_orig: usize, base: f32, fast: f32, slow: f32) -> (f32, f32) {
    let dim = |beta: f32| {
        d as f32 * (n_ctx_orig as f32 / (beta * 2.0 * std::f32::consts::PI)).ln()
            / (2.0 * base.ln())
    };
    let low = dim(fast).floor().max(0.0);
    let high = dim(slow).ceil().min(d as f32 - 1.0);
    (low, high)
}
