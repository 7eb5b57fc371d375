//! A session's KV cache, saved with its conversation (the browser keeps it in IndexedDB), so a
//! chat reopened after a reload answers its next turn without recomputing the history.
//!
//! ```text
//! "CHORDKV1" · u32 version · u64 model fingerprint · u32 n_layer · u32 kv_dim · u32 len ·
//! u32 keep · u32 dropped · u32 history_len · history (u32 each) ·
//! per layer: keys (len, kv_dim) then values (len, kv_dim), f16 little-endian
//! ```
//! f16 halves the bytes (llama.cpp's default cache type); a snapshot is only restored into the
//! model that made it (same [`crate::model::Model::fingerprint`]), and every size is checked
//! against the bytes before anything is allocated.

use half::f16;

use super::Session;
use crate::backend::AnyBackend;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"CHORDKV1";
const VERSION: u32 = 1;

/// A session's tokens and cache.
#[derive(Clone, Debug, PartialEq)]
pub struct KvSnapshot {
    pub fingerprint: u64,
    pub n_layer: usize,
    pub kv_dim: usize,
    /// Cache positions.
    pub len: usize,
    pub keep: usize,
    pub dropped: usize,
    /// Every token evaluated (`len + dropped`).
    pub history: Vec<u32>,
    /// Per layer, keys then values, each (len, kv_dim), f16 bits.
    pub kv: Vec<u16>,
}

fn bad(what: &str) -> Error {
    Error::Invalid(format!("saved conversation cache: {what}"))
}

impl KvSnapshot {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(48 + self.history.len() * 4 + self.kv.len() * 2);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.fingerprint.to_le_bytes());
        for v in [
            self.n_layer,
            self.kv_dim,
            self.len,
            self.keep,
            self.dropped,
            self.history.len(),
        ] {
            b.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for t in &self.history {
            b.extend_from_slice(&t.to_le_bytes());
        }
        for h in &self.kv {
            b.extend_from_slice(&h.to_le_bytes());
        }
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<KvSnapshot> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = b.get(at..at + n).ok_or_else(|| bad("truncated"))?;
            at += n;
            Ok(s)
        };
        if take(8)? != MAGIC {
            return Err(bad("not a saved cache"));
        }
        let u32_ = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        if u32_(take(4)?) != VERSION {
            return Err(bad("unknown version"));
        }
        let fp = take(8)?;
        let fingerprint =
            u64::from_le_bytes([fp[0], fp[1], fp[2], fp[3], fp[4], fp[5], fp[6], fp[7]]);
        let mut head = [0usize; 6];
        for h in &mut head {
            *h = u32_(take(4)?) as usize;
        }
        let [n_layer, kv_dim, len, keep, dropped, n_hist] = head;
        if len.checked_add(dropped) != Some(n_hist) || keep.saturating_add(dropped) > n_hist {
            return Err(bad("inconsistent lengths"));
        }
        let n_kv = n_layer
            .checked_mul(len)
            .and_then(|x| x.checked_mul(kv_dim))
            .and_then(|x| x.checked_mul(2))
            .ok_or_else(|| bad("too large"))?;
        let want = n_hist
            .checked_mul(4)
            .and_then(|h| n_kv.checked_mul(2).and_then(|k| k.checked_add(h)))
            .ok_or_else(|| bad("too large"))?;
        if b.len() != 44 + want {
            return Err(bad("wrong size"));
        }
        let history = take(n_hist * 4)?.chunks_exact(4).map(u32_).collect();
        let kv = take(n_kv * 2)?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Ok(KvSnapshot {
            fingerprint,
            n_layer,
            kv_dim,
            len,
            keep,
            dropped,
            history,
            kv,
        })
    }

    /// Bytes of [`KvSnapshot::to_bytes`].
    pub fn byte_len(&self) -> usize {
        44 + self.history.len() * 4 + self.kv.len() * 2
    }
}

fn to_f16(v: &[f32], out: &mut Vec<u16>) {
    out.extend(v.iter().map(|&x| f16::from_f32(x).to_bits()));
}

fn from_f16(v: &[u16]) -> Vec<f32> {
    v.iter().map(|&h| f16::from_bits(h).to_f32()).collect()
}

impl Session {
    /// The tokens and KV cache of this session (read back from the GPU where it runs there).
    pub async fn snapshot(&self) -> Result<KvSnapshot> {
        let hp = &self.model.hp;
        let (len, kvd) = (self.len(), hp.kv_dim());
        let mut kv = Vec::with_capacity(2 * hp.n_layer * len * kvd);
        for il in 0..hp.n_layer {
            match &self.backend {
                AnyBackend::Cpu(c) => {
                    let (k, v) = c.kv().layer(il);
                    to_f16(&k[..len * kvd], &mut kv);
                    to_f16(&v[..len * kvd], &mut kv);
                }
                #[cfg(feature = "webgpu")]
                AnyBackend::Gpu(g) => {
                    let (k, v) = g.read_kv(il).await?;
                    to_f16(&k, &mut kv);
                    to_f16(&v, &mut kv);
                }
            }
        }
        Ok(KvSnapshot {
            fingerprint: self.model.fingerprint,
            n_layer: hp.n_layer,
            kv_dim: kvd,
            len,
            keep: self.keep,
            dropped: self.dropped,
            history: self.history.clone(),
            kv,
        })
    }

    /// Load a snapshot made with this model into this session, replacing what it holds. Fails
    /// (leaving the session empty) where it was made by another model or does not fit this
    /// session's context: the caller then recomputes.
    pub fn restore(&mut self, s: &KvSnapshot) -> Result<()> {
        self.reset();
        let hp = &self.model.hp;
        if s.fingerprint != self.model.fingerprint {
            return Err(bad("made with another model"));
        }
        if s.n_layer != hp.n_layer || s.kv_dim != hp.kv_dim() {
            return Err(bad("shape differs from the model's"));
        }
        if s.len > self.n_ctx() {
            return Err(bad("larger than this context"));
        }
        if s.history.iter().any(|&t| t as usize >= hp.n_vocab)
            || s.kv.len() != 2 * s.n_layer * s.len * s.kv_dim
            || s.history.len() != s.len + s.dropped
        {
            return Err(bad("inconsistent"));
        }
        let per = s.len * s.kv_dim;
        for il in 0..s.n_layer {
            let k = from_f16(&s.kv[2 * il * per..(2 * il + 1) * per]);
            let v = from_f16(&s.kv[(2 * il + 1) * per..(2 * il + 2) * per]);
            match &mut self.backend {
                AnyBackend::Cpu(c) => {
                    let (mut kc, mut vc) = c.kv_mut().layer_mut(il);
                    kc[..per].copy_from_slice(&k);
                    vc[..per].copy_from_slice(&v);
                }
                #[cfg(feature = "webgpu")]
                AnyBackend::Gpu(g) => g.write_kv(il, &k, &v)?,
            }
        }
        match &mut self.backend {
            AnyBackend::Cpu(c) => c.kv_mut().len = s.len,
            #[cfg(feature = "webgpu")]
            AnyBackend::Gpu(g) => g.set_len(s.len),
        }
        self.history = s.history.clone();
        self.keep = s.keep;
        self.dropped = s.dropped;
        Ok(())
    }
}
