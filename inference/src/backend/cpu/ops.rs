//! The elementwise and attention ops of the CPU forward pass (f32, exact).

/// out = x / sqrt(mean(x²) + eps) * w   (sum in f64, as ggml does)
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let scale = (1.0 / (ss / x.len() as f64 + eps as f64).sqrt()) as f32;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let scale = (1.0 / (ss / x.len() as f64 + eps as f64).sqrt()) as f32;
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

pub(crate) fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
    if let Some(b) = b {
        for row in x.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
        }
    }
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation (Gemma's `gelu_pytorch_tanh`).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// Rotary position embedding for one head of `head_dim` values.
pub struct Rope {
    /// base^(-2i/d) × freq_scale / freq_factor_i, i in 0..d/2, precomputed once per layer.
    inv_freq: Vec<f32>,
    neox: bool,
}

impl Rope {
    pub fn new(
        head_dim: usize,
        base: f32,
        freq_scale: f32,
        neox: bool,
        factors: Option<&[f32]>,
    ) -> Self {
        let half = head_dim / 2;
        let inv_freq = (0..half)
            .map(|i| {
                let f = (base as f64).powf(-2.0 * i as f64 / head_dim as f64) * freq_scale as f64;
                (f / factors.map_or(1.0, |ff| ff[i] as f64)) as f32
            })
            .collect();
        Rope { inv_freq, neox }
    }

    /// Rotate `x` (head_dim) for position `pos`: adjacent pairs (2i, 2i+1) for the original
    /// ordering, (i, i + d/2) for NeoX.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        self.rotate(x, pos as f32);
    }

    /// (cos, sin) of each pair's angle at `pos` (which may be negative), interleaved:
    /// (head_dim / 2, 2) values, exactly those [`Rope::rotate`] uses.
    pub fn cos_sin(&self, pos: f32) -> Vec<f32> {
        self.inv_freq
            .iter()
            .flat_map(|&f| {
                let (sin, cos) = (pos * f).sin_cos();
                [cos, sin]
            })
            .collect()
    }

    /// Rotate `x` by `pos` positions, which may be negative: a key stored at position p and
    /// rotated by -d is the key at p - d (the context shift), since RoPE angles are linear in the
    /// position.
    pub fn rotate(&self, x: &mut [f32], pos: f32) {
        let half = self.inv_freq.len();
        for (i, &f) in self.inv_freq.iter().enumerate() {
            let theta = pos * f;
            let (sin, cos) = theta.sin_cos();
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

/// One query head against keys `lo..=pos` of one KV head: softmax(q·k × scale) · v → `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    q: &[f32],
    kc: &[f32], // (n_ctx, kv_dim)
    vc: &[f32], // (n_ctx, kv_dim)
    kv_dim: usize,
    off: usize,
    lo: usize,
    pos: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = q.len();
    let mut max = f32::NEG_INFINITY;
    for j in lo..=pos {
        let k = &kc[j * kv_dim + off..j * kv_dim + off + hd];
        let s = dot(q, k) * scale;
        scores[j] = s;
        max = max.max(s);
    }
    let mut sum = 0f32;
    for s in &mut scores[lo..=pos] {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.fill(0.0);
    for j in lo..=pos {
        let p = scores[j] * inv;
        let v = &vc[j * kv_dim + off..j * kv_dim + off + hd];
        out.iter_mut().zip(v).for_each(|(o, &v)| *o += p * v);
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums: independent chains the compiler turns into SIMD lanes.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_orderings_rotate_the_right_pairs() {
        let mut a = vec![1.0, 0.0, 0.0, 0.0];
        Rope::new(4, 10000.0, 1.0, false, None).apply(&mut a, 1);
        // pair (0,1) rotated by 1 rad, pair (2,3) untouched (zero)
        assert!((a[0] - 1f32.cos()).abs() < 1e-6 && (a[1] - 1f32.sin()).abs() < 1e-6);
        let mut b = vec![1.0, 0.0, 0.0, 0.0];
        Rope::new(4, 10000.0, 1.0, true, None).apply(&mut b, 1);
        // NeoX pairs (0,2)
        assert!((b[0] - 1f32.cos()).abs() < 1e-6 && (b[2] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn attention_of_one_key_returns_its_value() {
        let q = [1.0, 2.0];
        let kc = [0.5, 0.5];
        let vc = [3.0, -4.0];
        let mut sc = [0.0];
        let mut out = [0.0; 2];
        attend(&q, &kc, &vc, 2, 0, 0, 0, 1.0, &mut sc, &mut out);
        assert_eq!(out, [3.0, -4.0]);
    }
}
