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
        self.pairs(pos, m).collect()
    }

    /// cos, sin (× `m`) of each pair's angle at `pos`, interleaved.
    fn pairs(&self, pos: f32, m: f32) -> impl Iterator<Item = f32> + '_ {
        self.inv_freq.iter().flat_map(move |&f| {
            let (sin, cos) = (pos * f).sin_cos();
            [cos * m, sin * m]
        })
    }

    /// Rotate `x` by `pos` positions, which may be negative, without the magnitude: a key stored
    /// at position p and rotated by -d is the key at p - d (the context shift), since RoPE angles
    /// are linear in the position.
    pub fn rotate(&self, x: &mut [f32], pos: f32) {
        self.turn(x, pos, 1.0);
    }

    fn turn(&self, x: &mut [f32], pos: f32, m: f32) {
        for (i, &f) in self.inv_freq.iter().enumerate() {
            let (sin, cos) = (pos * f).sin_cos();
            self.turn_pair(x, i, cos * m, sin * m);
        }
    }

    /// (cos, sin) × the magnitude of each pair at `pos` into `table`, (head_dim / 2, 2): what
    /// [`Rope::apply_table`] reads. One table serves every head of a token (a sine and a cosine
    /// are a software function call each in wasm, so per head they were a visible part of a
    /// decode step).
    pub fn table_into(&self, pos: usize, table: &mut Vec<f32>) {
        table.clear();
        table.extend(self.pairs(pos as f32, self.mscale));
    }

    /// [`Rope::apply`] with the table of `pos` from [`Rope::table_into`]: the same values.
    pub fn apply_table(&self, x: &mut [f32], table: &[f32]) {
        for (i, cs) in table.chunks_exact(2).enumerate() {
            self.turn_pair(x, i, cs[0], cs[1]);
        }
    }

    /// Rotate pair `i` of a head by the angle of this (cos, sin).
    fn turn_pair(&self, x: &mut [f32], i: usize, cos: f32, sin: f32) {
        let (a, b) = if self.neox {
            (i, i + self.inv_freq.len())
        } else {
            (2 * i, 2 * i + 1)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * cos - x1 * sin;
        x[b] = x0 * sin + x1 * cos;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A head rotated with a position's table is bit for bit the head rotated by `apply`, for
    /// both pair orderings, partial RoPE (dims past n_rot untouched) and a magnitude.
    #[test]
    fn a_table_rotates_like_apply() {
        let sc = RopeScaling {
            ext_factor: 1.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: 4096,
            attn_factor: 1.0,
        };
        for neox in [false, true] {
            let rope = Rope::scaled(16, 10000.0, 0.25, &sc, neox, None);
            assert!(rope.mscale != 1.0, "YaRN's magnitude is part of the check");
            let mut table = Vec::new();
            for pos in [0, 1, 7, 1000, 131_071] {
                let head: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
                let (mut a, mut b) = (head.clone(), head.clone());
                rope.apply(&mut a, pos);
                rope.table_into(pos, &mut table);
                rope.apply_table(&mut b, &table);
                assert_eq!(a, b, "neox {neox}, pos {pos}");
                assert_eq!(a[16..], head[16..], "dims past n_rot pass through");
                assert_eq!(table, rope.cos_sin_scaled(pos as f32));
            }
        }
    }
}
