//! KV cache, preallocated for the whole context: no reallocation or concatenation per token.

use super::hparams::HParams;
use crate::error::{Error, Result};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A lock that a panicking reader poisoned still holds whole rows (a reader writes nothing).
pub fn read(rows: &KvRows) -> KvRead<'_> {
    rows.read().unwrap_or_else(|e| e.into_inner())
}

fn write(rows: &KvRows) -> KvWrite<'_> {
    rows.write().unwrap_or_else(|e| e.into_inner())
}

/// One layer's keys or values, (n_ctx, n_head_kv * head_dim), shared with the CPU pool's
/// attention jobs (which own what they read): the forward pass writes a token's row between
/// jobs, the jobs' chunks read under the lock and release it before their job counts as done.
pub type KvRows = Arc<RwLock<Vec<f32>>>;
pub type KvRead<'a> = RwLockReadGuard<'a, Vec<f32>>;
pub type KvWrite<'a> = RwLockWriteGuard<'a, Vec<f32>>;

/// Keys and values of every layer, f32.
pub struct KvCache {
    /// Per layer: (n_ctx, n_head_kv * head_dim)
    k: Vec<KvRows>,
    /// Per layer: (n_ctx, n_head_kv * head_dim)
    v: Vec<KvRows>,
    pub n_ctx: usize,
    kv_dim: usize,
    /// Tokens stored (the next position).
    pub len: usize,
}

impl KvCache {
    pub fn new(hp: &HParams, n_ctx: usize) -> Result<Self> {
        let kv_dim = hp.kv_dim();
        let per = n_ctx
            .checked_mul(kv_dim)
            .filter(|per| {
                (hp.n_layer.checked_mul(8))
                    .and_then(|m| per.checked_mul(m))
                    .is_some()
            })
            .ok_or_else(|| Error::Invalid(format!("context size {n_ctx} is too large")))?;
        let too_big = || {
            Error::Invalid(format!(
                "not enough memory for a {n_ctx}-token KV cache ({} MB)",
                2 * hp.n_layer * per * 4 / 1_000_000
            ))
        };
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for _ in 0..hp.n_layer {
            for rows in [&mut k, &mut v] {
                let mut buf = Vec::new();
                buf.try_reserve_exact(per).map_err(|_| too_big())?;
                buf.resize(per, 0.0);
                rows.push(Arc::new(RwLock::new(buf)));
            }
        }
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
        2 * self.k.len() * self.n_ctx * self.kv_dim * 4
    }

    /// (n_ctx, kv_dim) keys and values of layer `il`.
    pub fn layer(&self, il: usize) -> (KvRead<'_>, KvRead<'_>) {
        (read(&self.k[il]), read(&self.v[il]))
    }

    pub fn layer_mut(&mut self, il: usize) -> (KvWrite<'_>, KvWrite<'_>) {
        (write(&self.k[il]), write(&self.v[il]))
    }

    /// Layer `il`'s keys and values, shared (for a pool job).
    pub fn layer_shared(&self, il: usize) -> (KvRows, KvRows) {
        (Arc::clone(&self.k[il]), Arc::clone(&self.v[il]))
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
        for il in 0..self.k.len() {
            let (mut kc, mut vc) = self.layer_mut(il);
            let src = (keep + discard) * d..(keep + discard + moved) * d;
            kc.copy_within(src.clone(), keep * d);
            vc.copy_within(src, keep * d);
            for row in kc[keep * d..(keep + moved) * d].chunks_exact_mut(d) {
                rotate(il, row);
            }
        }
        self.len = keep + moved;
    }
}
