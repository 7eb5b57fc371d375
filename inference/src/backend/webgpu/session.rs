//! One conversation on the GPU: the KV cache, the activation buffers and the recorded forward
//! pass. Per batch the host writes a 32-byte step uniform and the token ids, records one compute
//! pass, submits it once and reads back what was asked: nothing, the 4-byte argmax computed on the
//! GPU, or logits.

use std::rc::Rc;

use super::device::GpuOptions;
use super::graph::{check_grid, record, split2, Graph, RopeTables, Scratch};
use super::ops::Op;
use super::profile::{GpuProfile, GpuTimer, TS_AT};
use super::to_f32;
use super::uniforms::{ShiftParams, Step};
use super::weights::GpuModel;
use crate::backend::{check_shift, check_tokens, Backend, BackendKind, Output, Want};
use crate::error::{Error, Result};

/// Per-token counters and memory figures of a session.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GpuStats {
    pub dispatches_per_token: usize,
    pub submits_per_token: usize,
    pub readback_bytes_per_token: usize,
    pub buffer_bytes: u64,
    pub tensor_bytes: u64,
    pub kv_cache_bytes: u64,
    pub scratch_bytes: u64,
    /// GPU time of one decode step (mean since the last reset), from timestamp queries; `None`
    /// unless the device was opened with [`GpuOptions::timestamps`] and the adapter has them.
    pub gpu_ms_per_token: Option<f64>,
    /// GPU time of the prompt batches that returned a token (since the last reset), likewise.
    pub gpu_prefill_ms: Option<f64>,
}

/// What a forward call reads back.
enum Read {
    Nothing,
    Token,
    Logits,
}

/// One conversation on the GPU: KV cache, activations and the recorded ops.
pub struct GpuSession {
    m: Rc<GpuModel>,
    n_ctx: usize,
    max_batch: usize,
    max_out: usize,
    len: usize,
    s: Scratch,
    rope: RopeTables,
    /// Per layer: keys and values, each (n_ctx, n_head_kv · head_dim).
    kv: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    graph: Graph,
    readback: wgpu::Buffer,
    logits_readback: Option<wgpu::Buffer>,
    /// Staging for a context shift: the moved keys and values of one layer (made on first use).
    shift_tmp: Option<(wgpu::Buffer, wgpu::Buffer)>,
    kv_bytes: u64,
    scratch_bytes: u64,
    last: (usize, usize, usize),
    timer: Option<GpuTimer>,
    profile: Option<GpuProfile>,
}

impl GpuSession {
    /// A session with a KV cache for `n_ctx` tokens (clamped to the training context).
    pub fn new(m: Rc<GpuModel>, n_ctx: usize, opts: &GpuOptions) -> Result<GpuSession> {
        let hp = &m.hp;
        let dev = &m.dev;
        dev.check()?;
        let n_ctx = n_ctx.clamp(1, hp.n_ctx_train);
        let (e, qd, kvd, hd, ff, nv) = (
            hp.n_embd,
            hp.q_dim(),
            hp.kv_dim(),
            hp.head_dim,
            hp.n_ff,
            hp.n_vocab,
        );
        if hd > 256 {
            // attention.wgsl gives each of a head's dimensions one of its 256 threads
            return Err(Error::Gpu(format!(
                "head size {hd} is above the GPU attention kernel's 256; use the CPU backend"
            )));
        }
        let lim = dev.max_binding as usize;
        // Batch: bounded by the option, the attention scores buffer and the widest activation.
        let widest = [e, qd, ff].into_iter().max().unwrap_or(e);
        let max_batch = opts
            .max_batch
            .unwrap_or(64)
            .min(lim / (hp.n_head * n_ctx * 4).max(1))
            .min(lim / (widest * 4))
            .min(n_ctx);
        if max_batch == 0 {
            return Err(Error::Gpu(format!(
                "a {n_ctx}-token context does not fit the {lim}-byte binding limit"
            )));
        }
        let max_out = max_batch.min((lim.min(64 << 20) / (nv * 4)).max(1));
        let s = Scratch::new(dev, &m, n_ctx, max_batch, max_out)?;
        let timer = GpuTimer::new(dev);
        // The token (4 bytes) and, when timed, the pass's two timestamps at TS_AT.
        let readback = dev.readback_buffer("readback", TS_AT + 16);
        let rope = RopeTables::new(dev, &m, n_ctx)?;
        // (n_ctx, kv_dim) per layer, of f32 or f16 (`scratch` counts 4-byte words)
        let kv_words = kv_words(dev, n_ctx * kvd);
        let mut kv = Vec::with_capacity(hp.n_layer);
        for _ in 0..hp.n_layer {
            let u = wgpu::BufferUsages::empty();
            kv.push((
                dev.scratch("k_cache", kv_words, u)?,
                dev.scratch("v_cache", kv_words, u)?,
            ));
        }
        let kv_bytes = kv.iter().map(|(k, v)| k.size() + v.size()).sum();
        let graph = record(&m, &s, &rope, &kv, n_ctx)?;
        let scratch_bytes = s.bytes() + rope.bytes();
        dev.check()?;
        Ok(GpuSession {
            m,
            n_ctx,
            max_batch,
            max_out,
            len: 0,
            s,
            rope,
            kv,
            graph,
            readback,
            logits_readback: None,
            shift_tmp: None,
            kv_bytes,
            scratch_bytes,
            last: (0, 0, 0),
            timer,
            profile: None,
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &GpuModel {
        &self.m
    }

    /// Forget the GPU time measured so far (benchmarks, between runs).
    pub fn reset_timers(&mut self) {
        if let Some(t) = &mut self.timer {
            t.decode = (0.0, 0);
            t.prefill = (0.0, 0);
        }
    }

    /// Time every dispatch of the following decode steps on the GPU (needs a device opened with
    /// timestamps on an adapter that can write them inside a pass); false where it cannot.
    pub fn set_profile(&mut self, on: bool) -> bool {
        let dev = &self.m.dev;
        if !on || !dev.timestamps_inside {
            self.profile = None;
            return false;
        }
        let ops = self.graph.body.len() + self.graph.head.len();
        self.profile = Some(GpuProfile::new(dev, ops));
        true
    }

    /// GPU time per decode step by kind of op, largest first: (label, ms per token, dispatches
    /// per token, GB/s of weights read: 0 for ops without weights), from the steps since
    /// `set_profile(true)`.
    pub fn profile(&self) -> Vec<(&'static str, f64, f64, f64)> {
        self.profile
            .as_ref()
            .map(GpuProfile::summary)
            .unwrap_or_default()
    }

    pub fn stats(&self) -> GpuStats {
        GpuStats {
            dispatches_per_token: self.last.0,
            submits_per_token: self.last.1,
            readback_bytes_per_token: self.last.2,
            buffer_bytes: self.m.buffer_bytes,
            tensor_bytes: self.m.tensor_bytes,
            kv_cache_bytes: self.kv_bytes,
            scratch_bytes: self.scratch_bytes,
            gpu_ms_per_token: self
                .timer
                .as_ref()
                .filter(|t| t.decode.1 > 0)
                .map(|t| t.decode.0 / t.decode.1 as f64 / 1e6),
            gpu_prefill_ms: self
                .timer
                .as_ref()
                .filter(|t| t.prefill.1 > 0)
                .map(|t| t.prefill.0 / 1e6),
        }
    }

    /// One batch (≤ max_batch tokens, ≤ max_out when all logits are wanted): one command buffer,
    /// one submit; returns what `read` asks for.
    async fn batch(&mut self, tokens: &[u32], all: bool, read: Read) -> Result<Vec<u8>> {
        let m = self.m.clone();
        let dev = &m.dev;
        dev.check()?;
        let n = tokens.len() as u32;
        let (out_row0, n_out) = if all { (0, n) } else { (n - 1, 1) };
        // Every grid within WebGPU's per-dimension limit, checked before anything is recorded
        // (wgpu would panic on the dispatch).
        for op in self.graph.body.iter().chain(&self.graph.head) {
            check_grid(op.what, op.launch(n, n_out, self.len as u32).1)?;
        }
        let step = Step {
            n_tok: n,
            start: self.len as u32,
            out_row0,
            n_out,
        };
        dev.queue
            .write_buffer(&self.s.step, 0, bytemuck::bytes_of(&step));
        dev.queue
            .write_buffer(&self.s.tokens, 0, bytemuck::cast_slice(tokens));
        let mut enc = dev
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("token"),
            });
        let mut dispatches = 0u32;
        {
            // Timed only when the token is read back (the timestamps travel with it).
            let timed = self.timer.as_ref().filter(|_| matches!(read, Read::Token));
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: timed.map(|t| wgpu::ComputePassTimestampWrites {
                    query_set: &t.set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            let head: &[Op] = if matches!(read, Read::Nothing) {
                &[]
            } else {
                &self.graph.head
            };
            let prof = self
                .profile
                .as_ref()
                .filter(|_| n == 1 && matches!(read, Read::Token));
            if let Some(p) = prof {
                pass.write_timestamp(&p.set, 0);
            }
            for op in self.graph.body.iter().chain(head) {
                let (pipeline, (gx, gy, gz)) = op.launch(n, n_out, self.len as u32);
                if gx == 0 || gy == 0 || gz == 0 {
                    continue;
                }
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &op.bind, &[]);
                pass.dispatch_workgroups(gx, gy, gz);
                dispatches += 1;
                if let Some(p) = prof.filter(|p| dispatches < p.count) {
                    pass.write_timestamp(&p.set, dispatches);
                }
            }
        }
        let bytes = match read {
            Read::Nothing => 0,
            Read::Token => {
                enc.copy_buffer_to_buffer(&self.s.result, 0, &self.readback, 0, 4);
                if let Some(t) = &self.timer {
                    enc.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
                    enc.copy_buffer_to_buffer(&t.resolve, 0, &self.readback, TS_AT, 16);
                }
                if let Some(p) = self.profile.as_ref().filter(|_| n == 1) {
                    let k = dispatches.min(p.count - 1) + 1;
                    enc.resolve_query_set(&p.set, 0..k, &p.resolve, 0);
                    enc.copy_buffer_to_buffer(&p.resolve, 0, &p.readback, 0, k as u64 * 8);
                }
                4
            }
            Read::Logits => {
                let bytes = n_out as u64 * self.m.hp.n_vocab as u64 * 4;
                let need = self.max_out as u64 * self.m.hp.n_vocab as u64 * 4;
                if self.logits_readback.is_none() {
                    self.logits_readback = Some(dev.readback_buffer("logits_readback", need));
                }
                if let Some(rb) = &self.logits_readback {
                    enc.copy_buffer_to_buffer(&self.s.logits, 0, rb, 0, bytes);
                }
                bytes
            }
        };
        dev.queue.submit([enc.finish()]);
        self.len += tokens.len();
        if n == 1 {
            self.last = (dispatches as usize, 1, bytes as usize);
        }
        let out = match read {
            Read::Nothing => Vec::new(),
            Read::Token if self.timer.is_some() => {
                let b = dev.read(&self.readback, TS_AT + 16).await?;
                if let Some(t) = &mut self.timer {
                    t.add(&b, n as usize);
                }
                if n == 1 {
                    self.record_profile(dispatches).await?;
                }
                b
            }
            Read::Token => dev.read(&self.readback, 4).await?,
            Read::Logits => match &self.logits_readback {
                Some(rb) => dev.read(rb, bytes).await?,
                None => Vec::new(),
            },
        };
        dev.check()?;
        Ok(out)
    }

    /// Add the per-dispatch times of a profiled decode step to the profile.
    async fn record_profile(&mut self, dispatches: u32) -> Result<()> {
        let Some(p) = &self.profile else {
            return Ok(());
        };
        let b = self
            .m
            .dev
            .read(&p.readback, p.bytes_for(dispatches))
            .await?;
        let period = self.timer.as_ref().map_or(1.0, |t| t.period);
        // The ops that were dispatched, in order (the same walk as `forward`).
        let ops: Vec<(&'static str, u64)> = self
            .graph
            .body
            .iter()
            .chain(&self.graph.head)
            .filter(|op| {
                let (_, (gx, gy, gz)) = op.launch(1, 1, self.len as u32);
                gx > 0 && gy > 0 && gz > 0
            })
            .map(|op| (op.what, op.weight_bytes))
            .collect();
        if let Some(p) = &mut self.profile {
            p.add_step(&b, &ops, period);
        }
        Ok(())
    }

    /// Keys and values of layer `il` at positions `0..len`, each (len, n_head_kv · head_dim),
    /// read back from the GPU.
    pub async fn read_kv(&self, il: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let dev = &self.m.dev;
        let (kc, vc) = self
            .kv
            .get(il)
            .ok_or_else(|| Error::Invalid(format!("no layer {il}")))?;
        let elem = if dev.f16_kv { 2 } else { 4 };
        let bytes = (self.len * self.m.hp.kv_dim() * elem) as u64;
        if bytes == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let rb = dev.readback_buffer("kv_readback", 2 * bytes);
        let mut enc = dev
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("kv_readback"),
            });
        enc.copy_buffer_to_buffer(kc, 0, &rb, 0, bytes);
        enc.copy_buffer_to_buffer(vc, 0, &rb, bytes, bytes);
        dev.queue.submit([enc.finish()]);
        let raw = dev.read(&rb, 2 * bytes).await?;
        let b: Vec<f32> = if dev.f16_kv {
            raw.chunks_exact(2)
                .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
                .collect()
        } else {
            to_f32(&raw)
        };
        let (k, v) = b.split_at(b.len() / 2);
        Ok((k.to_vec(), v.to_vec()))
    }

    /// Write keys and values of layer `il` at positions `0..n` (each (n, n_head_kv · head_dim));
    /// the cache then holds `n` positions once every layer is written ([`GpuSession::set_len`]).
    pub fn write_kv(&mut self, il: usize, k: &[f32], v: &[f32]) -> Result<()> {
        let kvd = self.m.hp.kv_dim();
        let (kc, vc) = self
            .kv
            .get(il)
            .ok_or_else(|| Error::Invalid(format!("no layer {il}")))?;
        if k.len() != v.len() || !k.len().is_multiple_of(kvd) || k.len() / kvd > self.n_ctx {
            return Err(Error::Invalid("KV rows do not fit the cache".into()));
        }
        let dev = &self.m.dev;
        if dev.f16_kv {
            // f16 values, two per word (the cache holds an even number of values per row)
            let halves = |x: &[f32]| -> Vec<u8> {
                x.iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect()
            };
            dev.queue.write_buffer(kc, 0, &halves(k));
            dev.queue.write_buffer(vc, 0, &halves(v));
        } else {
            dev.queue.write_buffer(kc, 0, bytemuck::cast_slice(k));
            dev.queue.write_buffer(vc, 0, bytemuck::cast_slice(v));
        }
        dev.check()
    }

    /// Declare `n` positions of the cache filled (after [`GpuSession::write_kv`]).
    pub fn set_len(&mut self, n: usize) {
        self.len = n.min(self.n_ctx);
    }

    /// The argmax token of a readback, checked.
    fn token_of(&self, b: &[u8]) -> Result<u32> {
        let id = b
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| Error::Gpu("short readback".into()))?;
        if id as usize >= self.m.hp.n_vocab {
            return Err(Error::Gpu(format!(
                "the GPU returned token {id}, outside the vocabulary: the model computed NaN \
                 logits (its weights or settings are broken)"
            )));
        }
        Ok(id)
    }
}

impl Backend for GpuSession {
    fn kind(&self) -> BackendKind {
        BackendKind::WebGpu
    }

    fn len(&self) -> usize {
        self.len
    }

    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// Batches of at most `max_batch` tokens (`max_out` when every position's logits are read),
    /// one submit each; only the last one reads anything back.
    async fn forward(&mut self, tokens: &[u32], want: Want) -> Result<Output> {
        self.m.dev.check()?;
        check_tokens(tokens, self.len, self.n_ctx, self.m.hp.n_vocab)?;
        let per = if want == Want::All {
            self.max_out
        } else {
            self.max_batch
        };
        let n_chunks = tokens.len().div_ceil(per);
        let mut logits = Vec::new();
        let mut token = None;
        for (i, c) in tokens.chunks(per).enumerate() {
            let last = i + 1 == n_chunks;
            match want {
                Want::All => logits.extend(to_f32(&self.batch(c, true, Read::Logits).await?)),
                _ if !last => {
                    self.batch(c, false, Read::Nothing).await?;
                }
                Want::Nothing => {
                    self.batch(c, false, Read::Nothing).await?;
                }
                Want::Argmax => {
                    let b = self.batch(c, false, Read::Token).await?;
                    token = Some(self.token_of(&b)?);
                }
                Want::Last => logits = to_f32(&self.batch(c, false, Read::Logits).await?),
            }
        }
        Ok(match (want, token) {
            (Want::Nothing, _) => Output::Nothing,
            (Want::Argmax, Some(t)) => Output::Token(t),
            (Want::Argmax, None) => return Err(Error::Gpu("no token was read back".into())),
            _ => Output::Logits(logits),
        })
    }

    /// Per layer: copy the moved keys and values to staging buffers, then one dispatch rotates
    /// the keys by −discard and writes both back `discard` positions lower. One submit.
    async fn shift(&mut self, keep: usize, discard: usize) -> Result<()> {
        check_shift(keep, discard, self.len)?;
        let m = &*self.m;
        let dev = &m.dev;
        dev.check()?;
        let hp = &m.hp;
        let kvd = hp.kv_dim();
        let moved = self.len - keep - discard;
        if moved > 0 {
            if self.shift_tmp.is_none() {
                let u = wgpu::BufferUsages::empty();
                let words = kv_words(dev, self.n_ctx * kvd);
                self.shift_tmp = Some((
                    dev.scratch("shift_k", words, u)?,
                    dev.scratch("shift_v", words, u)?,
                ));
            }
            let Some((tk, tv)) = &self.shift_tmp else {
                return Ok(());
            };
            // cos/sin of -discard positions, per RoPE table (exactly what the CPU rotates by).
            let delta: Vec<wgpu::Buffer> = self
                .rope
                .tables
                .iter()
                .map(|(r, _)| dev.upload_f32("rope_delta", &r.cos_sin(-(discard as f32))))
                .collect::<Result<_>>()?;
            let p = dev.uniform(
                "shift",
                &ShiftParams {
                    n_head_kv: hp.n_head_kv as u32,
                    hd: hp.head_dim as u32,
                    neox: hp.rope_neox as u32,
                    dst: keep as u32,
                    n: moved as u32,
                    rot: hp.n_rot as u32,
                    _pad: [0; 2],
                },
            );
            let k = &m.kernels;
            let elem = if dev.f16_kv { 2 } else { 4 };
            let bytes = (moved * kvd * elem) as u64;
            let src = ((keep + discard) * kvd * elem) as u64;
            let mut enc = dev
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("shift"),
                });
            let moved_groups = u32::try_from(moved)
                .map_err(|_| Error::Gpu(format!("cannot shift {moved} positions")))?;
            let (gx, gy) = split2(moved_groups);
            check_grid("shift", (gx, gy, 1))?;
            for (il, (kc, vc)) in self.kv.iter().enumerate() {
                enc.copy_buffer_to_buffer(kc, src, tk, 0, bytes);
                enc.copy_buffer_to_buffer(vc, src, tv, 0, bytes);
                let bind = dev.bind_group(
                    &k.shift_layout,
                    &[&p, &delta[self.rope.layer[il]], tk, tv, kc, vc],
                );
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("shift"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&k.shift);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
            dev.queue.submit([enc.finish()]);
        }
        self.len = keep + moved;
        dev.check()
    }
}

/// 4-byte words of `values` cache values (f16 where the device keeps the cache in f16).
fn kv_words(dev: &super::device::GpuDevice, values: usize) -> usize {
    if dev.f16_kv {
        values.div_ceil(2)
    } else {
        values
    }
}
