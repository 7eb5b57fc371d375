//! Choosing the next token from logits: greedy, or temperature with top-k / top-p / min-p, after an
//! optional repetition penalty. A seeded generator makes sampling reproducible (same seed, same text).

/// Sampling settings. `temperature <= 0` is greedy argmax (ties go to the lowest id).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `top_p` (1 = all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive / multiply negative logits of recent tokens by this (1 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

/// SplitMix64: tiny, fast, good enough for sampling, identical on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub struct Sampler {
    pub params: SamplerParams,
    rng: Rng,
    cands: Vec<(u32, f32)>,
}

/// Index of the largest value; ties go to the lowest index. NaN never wins.
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in xs.iter().enumerate() {
        if v > bv {
            bv = v;
            best = i;
        }
    }
    best as u32
}

/// Grammar-constrained sampling: logits of tokens outside `mask` (a bitset over the
/// vocabulary, bit `id % 64` of word `id / 64`) become −∞, so neither greedy nor sampling can
/// pick them. Logits past the mask's end are masked too.
pub fn apply_mask(logits: &mut [f32], mask: &[u64]) {
    for (i, l) in logits.iter_mut().enumerate() {
        let allowed = mask.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 == 1);
        if !allowed {
            *l = f32::NEG_INFINITY;
        }
    }
}

impl Sampler {
    pub fn new(params: SamplerParams) -> Self {
        let rng = Rng::new(params.seed);
        Sampler {
            params,
            rng,
            cands: Vec::new(),
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.params.temperature <= 0.0
    }

    /// Pick the next token. `logits` may be modified (penalties); `history` is the context so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.repeat_penalty != 1.0 && p.repeat_penalty > 0.0 {
            let from = history.len().saturating_sub(p.repeat_last_n);
            let mut seen = std::collections::HashSet::new();
            for &t in &history[from..] {
                if let Some(l) = logits.get_mut(t as usize) {
                    if seen.insert(t) {
                        *l = if *l > 0.0 {
                            *l / p.repeat_penalty
                        } else {
                            *l * p.repeat_penalty
                        };
                    }
                }
            }
        }
        if self.is_greedy() {
            return argmax(logits);
        }

        // Candidates, most likely first (ties: lower id first, so results are deterministic).
        let c = &mut self.cands;
        c.clear();
        c.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan())
                .map(|(i, &l)| (i as u32, l)),
        );
        if c.is_empty() {
            return 0;
        }
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if p.top_k > 0 && p.top_k < c.len() {
            c.select_nth_unstable_by(p.top_k - 1, order);
            c.truncate(p.top_k);
        }
        c.sort_unstable_by(order);

        // Probabilities without temperature decide what top-p and min-p keep (llama.cpp's order).
        let max = c[0].1;
        let probs: Vec<f64> = c.iter().map(|&(_, l)| ((l - max) as f64).exp()).collect();
        let total: f64 = probs.iter().sum();
        let mut keep = c.len();
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            for (i, pr) in probs.iter().enumerate() {
                cum += pr / total;
                if cum >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            // probs[0] is the largest (exp(0) = 1).
            let n = probs[..keep]
                .iter()
                .take_while(|&&pr| pr >= p.min_p as f64)
                .count();
            keep = n.max(1);
        }
        c.truncate(keep);

        // Temperature, then draw.
        let t = p.temperature as f64;
        let w: Vec<f64> = c
            .iter()
            .map(|&(_, l)| ((l - max) as f64 / t).exp())
            .collect();
        let sum: f64 = w.iter().sum();
        let mut r = self.rng.next_f64() * sum;
        for (i, wi) in w.iter().enumerate() {
            if r < *wi {
                return c[i].0;
            }
            r -= wi;
        }
        c[c.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_breaks_ties_to_the_lowest_id() {
        let mut s = Sampler::new(SamplerParams::default());
        assert_eq!(s.sample(&mut [1.0, 3.0, 3.0, 2.0], &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 17) as f32 * 0.3).collect();
        let params = SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let run = |seed| {
            let mut s = Sampler::new(SamplerParams {
                seed,
                ..params.clone()
            });
            (0..50)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let mut s = Sampler::new(SamplerParams { top_k: 1, ..params });
        assert_eq!(s.sample(&mut logits.clone(), &[]), argmax(&logits));
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        // Token 0 has ~0.9 of the mass: top_p 0.5 must always pick it.
        let logits = [5.0, 2.0, 1.0, 0.5];
        let mut s = Sampler::new(SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            min_p: 0.0,
            ..Default::default()
        });
        for _ in 0..100 {
            assert_eq!(s.sample(&mut logits.clone(), &[]), 0);
        }
        // min_p 0.2: only tokens with p >= 0.2 p_max survive (0 and 1: e^-3 ≈ 0.05 < 0.2 drops 1 too).
        let mut s = Sampler::new(SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.2,
            ..Default::default()
        });
        for _ in 0..100 {
            assert_eq!(s.sample(&mut logits.clone(), &[]), 0);
        }
    }

    #[test]
    fn a_mask_leaves_only_allowed_tokens() {
        let mut logits = vec![5.0; 70];
        let mut mask = vec![0u64; 2];
        mask[1] |= 1 << 3; // token 67
        apply_mask(&mut logits, &mask);
        assert_eq!(argmax(&logits), 67);
        let mut s = Sampler::new(SamplerParams {
            temperature: 1.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut logits.clone(), &[]), 67);
    }

    #[test]
    fn repetition_penalty_demotes_recent_tokens() {
        let mut s = Sampler::new(SamplerParams {
            repeat_penalty: 2.0,
            ..Default::default()
        });
        // 0 leads, but it was just generated: 4/2 = 2 < 3.
        assert_eq!(s.sample(&mut [4.0, 3.0], &[0]), 1);
    }
}
