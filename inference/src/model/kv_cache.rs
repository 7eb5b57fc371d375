//! KV cache, preallocated for the whole context: no reallocation or concatenation per token.

use super::hparams::HParams;
use crate::error::{Error, Result};

/// Keys and values of every layer, f32.
pub struct KvCache {
    /// (n_layer, n_ctx, n_head_kv * head_dim)
    pub k: Vec<f32>,
    /// (n_layer, n_ctx, n_head_kv * head_dim)
    pub v: Vec<f32>,
    pub n_ctx: usize,
    kv_dim: usize,
    /// Tokens stored (the next position).
    pub len: usize,
}

impl KvCache {
    pub fn new(hp: &HParams, n_ctx: usize) -> Result<Self> {
        let kv_dim = hp.kv_dim();
        let n = hp
            .n_layer
            .checked_mul(n_ctx)
            .and_then(|x| x.checked_mul(kv_dim))
            .ok_or_else(|| Error::Invalid(format!("context size {n_ctx} is too large")))?;
        let mut k = Vec::new();
        let mut v = Vec::new();
        k.try_reserve_exact(n)
            .and_then(|_| v.try_reserve_exact(n))
            .map_err(|_| {
                Error::Invalid(format!(
                    "not enough memory for a {n_ctx}-token KV cache ({} MB)",
                    2 * n * 4 / 1_000_000
                ))
            })?;
        k.resize(n, 0.0);
        v.resize(n, 0.0);
        Ok(KvCache {
            k,
            v,
            n_ctx,
            kv_dim,
            len: 0,
        })
    }

    /// Bytes held by the cache.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 4
    }

    fn layer_range(&self, il: usize) -> std::ops::Range<usize> {
        let per = self.n_ctx * self.kv_dim;
        il * per..(il + 1) * per
    }

    /// (n_ctx, kv_dim) keys and values of layer `il`.
    pub fn layer(&self, il: usize) -> (&[f32], &[f32]) {
        let r = self.layer_range(il);
        (&self.k[r.clone()], &self.v[r])
    }

    pub fn layer_mut(&mut self, il: usize) -> (&mut [f32], &mut [f32]) {
        let r = self.layer_range(il);
        (&mut self.k[r.clone()], &mut self.v[r])
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Drop positions `keep..keep + discard`: positions after them move down by `discard`, and
    /// `rotate(layer, key_row)` is called on every moved key row (the caller re-applies RoPE for
    /// the new position). Requires `keep + discard <= len`.
    pub fn shift(
        &mut self,
        keep: usize,
        discard: usize,
        mut rotate: impl FnMut(usize, &mut [f32]),
    ) {
        let d = self.kv_dim;
        let moved = self.len - keep - discard;
        for il in 0..self.n_ctx_layers() {
            let (kc, vc) = self.layer_mut(il);
            let src = (keep + discard) * d..(keep + discard + moved) * d;
            kc.copy_within(src.clone(), keep * d);
            vc.copy_within(src, keep * d);
            for row in kc[keep * d..(keep + moved) * d].chunks_exact_mut(d) {
                rotate(il, row);
            }
        }
        self.len = keep + moved;
    }

    fn n_ctx_layers(&self) -> usize {
        self.k.len() / (self.n_ctx * self.kv_dim).max(1)
    }
}
