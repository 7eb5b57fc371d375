//! GPU time of a session: timestamp queries around every forward pass ([`GpuTimer`]) and, for
//! `chord bench --backend webgpu --profile`, around every dispatch of a decode step
//! ([`GpuProfile`]: time and weight GB/s per kind of op).

use super::device::GpuDevice;

/// Where the timestamps sit in the token readback buffer (after the 4-byte token, 8-aligned).
pub(super) const TS_AT: u64 = 8;

/// Timestamp queries written at the start and end of every forward pass.
pub(super) struct GpuTimer {
    /// Two timestamps: begin, end.
    pub set: wgpu::QuerySet,
    /// (2) u64 ticks, resolved from `set`, then copied next to the token in the readback.
    pub resolve: wgpu::Buffer,
    /// ns per tick.
    pub period: f64,
    /// Sum of decode-step GPU time (ns) and the number of steps; prompt batches likewise.
    pub decode: (f64, usize),
    pub prefill: (f64, usize),
}

impl GpuTimer {
    /// A timer where the device was opened with timestamps.
    pub fn new(dev: &GpuDevice) -> Option<GpuTimer> {
        dev.timestamp_period.map(|period| GpuTimer {
            set: dev.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("forward_time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: dev.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("forward_time"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            period: period as f64,
            decode: (0.0, 0),
            prefill: (0.0, 0),
        })
    }

    /// Add the GPU time of a timed forward pass of `n_tokens` (timestamps at `TS_AT` of its
    /// readback `b`).
    pub fn add(&mut self, b: &[u8], n_tokens: usize) {
        let Some(ts) = b.get(TS_AT as usize..TS_AT as usize + 16) else {
            return;
        };
        let tick = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&ts[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        // A timestamp may wrap or be reset by the driver; such a sample is dropped.
        let Some(ticks) = tick(1).checked_sub(tick(0)) else {
            return;
        };
        let ns = ticks as f64 * self.period;
        let acc = if n_tokens == 1 {
            &mut self.decode
        } else {
            &mut self.prefill
        };
        acc.0 += ns;
        acc.1 += 1;
    }
}

/// Per-dispatch GPU time of decode steps: a timestamp before the first dispatch and after each.
pub(super) struct GpuProfile {
    /// (n_ops + 1) timestamps.
    pub set: wgpu::QuerySet,
    /// (n_ops + 1) u64 ticks, resolved from `set`.
    pub resolve: wgpu::Buffer,
    pub readback: wgpu::Buffer,
    /// Timestamps this profile holds (the ops after that are not timed).
    pub count: u32,
    /// label -> (ns, dispatches, weight bytes), summed over `steps` decode steps.
    by_op: Vec<(&'static str, f64, usize, u64)>,
    steps: usize,
}

impl GpuProfile {
    /// A profile for a graph of `ops` ops.
    pub fn new(dev: &GpuDevice, ops: usize) -> GpuProfile {
        let count = (ops + 1).min(4096) as u32;
        GpuProfile {
            set: dev.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: dev.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile"),
                size: count as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: dev.readback_buffer("profile_readback", count as u64 * 8),
            count,
            by_op: Vec::new(),
            steps: 0,
        }
    }

    /// Bytes of the readback that hold the timestamps of `dispatches` dispatches.
    pub fn bytes_for(&self, dispatches: u32) -> u64 {
        (dispatches.min(self.count - 1) + 1) as u64 * 8
    }

    /// Add one decode step: its timestamps `b` (u64 ticks of `period` ns) and the dispatched
    /// ops in order, (label, weight bytes).
    pub fn add_step(&mut self, b: &[u8], ops: &[(&'static str, u64)], period: f64) {
        let ticks: Vec<u64> = b
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
            .collect();
        for (i, w) in ticks.windows(2).enumerate() {
            let (Some(&(what, bytes)), Some(dt)) = (ops.get(i), w[1].checked_sub(w[0])) else {
                continue;
            };
            let ns = dt as f64 * period;
            match self.by_op.iter_mut().find(|e| e.0 == what) {
                Some(e) => {
                    e.1 += ns;
                    e.2 += 1;
                    e.3 += bytes;
                }
                None => self.by_op.push((what, ns, 1, bytes)),
            }
        }
        self.steps += 1;
    }

    /// GPU time per decode step by kind of op, largest first: (label, ms per token, dispatches
    /// per token, GB/s of weights read: 0 for ops without weights).
    pub fn summary(&self) -> Vec<(&'static str, f64, f64, f64)> {
        let steps = self.steps.max(1) as f64;
        let mut v: Vec<_> = self
            .by_op
            .iter()
            .map(|&(what, ns, n, bytes)| {
                let gb_s = if ns > 0.0 { bytes as f64 / ns } else { 0.0 };
                (what, ns / steps / 1e6, n as f64 / steps, gb_s)
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}
