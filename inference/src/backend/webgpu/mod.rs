//! The WebGPU backend: the same forward pass as [`crate::backend::cpu`], as WGSL kernels on wgpu.
//!
//! * Weights are uploaded once, tensor by tensor, still in their GGUF block layout (buffer bytes ≈
//!   tensor bytes); a tensor larger than the storage binding limit is split by rows across buffers
//!   (`weights.rs`).
//! * Pipelines, bind groups and uniform buffers are built at load ([`GpuModel`]) and session
//!   creation ([`GpuSession::new`], `graph.rs`); per batch the host writes a 32-byte step uniform
//!   and the token ids, records ONE command buffer (one compute pass), submits it once and reads
//!   back the 4-byte argmax computed on the GPU (or logits, when sampling needs them).
//! * The context shift moves and re-rotates the cache on the GPU (`shaders/shift.wgsl`).
//! * A layer is six dispatches where its architecture allows (graph.rs `LayerPlan`): the norms,
//!   residual adds, activation, RoPE and cache store are folded into the products and RoPE.
//! * One optional feature: an f16 KV cache where the adapter has `shader-f16`
//!   ([`GpuOptions::f16_kv`](crate::backend::GpuOptions)); no subgroups.
//!
//! Entry points are `async` (the browser's WebGPU is); natively a `block_on` runs them.

mod device;
mod fused;
mod graph;
mod kernels;
mod ops;
mod profile;
mod session;
mod uniforms;
mod weights;

pub use device::{GpuDevice, GpuOptions};
pub use ops::Fuse;
pub use session::{GpuSession, GpuStats};
pub use weights::{GpuMatrix, GpuModel, GpuUploader};

use graph::{split2, Grid};
use kernels::Kernels;
use kernels::MATVEC1_RPW;
use uniforms::{EmbedParams, MatvecParams, Step};

use crate::error::{Error, Result};
use crate::quant::GgmlType;

// ----------------------------------------------------------------------------------------------
// Single-kernel entry points (tests and diagnostics)
// ----------------------------------------------------------------------------------------------

/// Run the matvec kernel of `ty` alone: y (n, rows) = W (rows, cols; GGUF blocks) · x (n, cols).
/// W is split across buffers when larger than the device's binding limit.
pub async fn matvec(
    dev: &GpuDevice,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: &[u8],
    x: &[f32],
    n: usize,
) -> Result<Vec<f32>> {
    if x.len() != n * cols || n == 0 {
        return Err(Error::Invalid("x must hold n × cols values".into()));
    }
    let k = Kernels::new(dev, &[ty], &[], &[]).await?;
    let m = GpuMatrix::upload(dev, "w", ty, rows, cols, w)?;
    let u = wgpu::BufferUsages::empty();
    let xb = dev.upload_f32("x", x)?;
    let y = dev.scratch("y", n * rows, u)?;
    let dummy = dev.upload("dummy", &[0u8; 16])?;
    let step = dev.uniform(
        "step",
        &Step {
            n_tok: n as u32,
            n_out: n as u32,
            ..Step::default()
        },
    );
    let rb = dev.readback_buffer("y_readback", (n * rows * 4) as u64);
    let mut enc = dev
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for c in &m.chunks {
            let p = dev.uniform(
                "matvec",
                &MatvecParams {
                    rows: c.rows as u32,
                    cols: cols as u32,
                    row_bytes: m.row_bytes as u32,
                    out_off: c.row0 as u32,
                    out_stride: rows as u32,
                    ..MatvecParams::default()
                },
            );
            let bind = dev.bind_group(&k.matvec_layout, &[&step, &p, &c.buf, &xb, &y, &dummy]);
            let grid = Grid::Rows {
                rows: c.rows as u32,
                out: false,
            };
            let (pipeline, (gx, gy, gz)) = if n == 1 {
                let (gx, gy) = split2((c.rows as u32).div_ceil(MATVEC1_RPW));
                (k.matvec1_for(ty)?, (gx, gy, 1))
            } else {
                (k.matvec_for(ty)?, grid.size(n as u32, n as u32))
            };
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(gx, gy, gz);
        }
    }
    enc.copy_buffer_to_buffer(&y, 0, &rb, 0, (n * rows * 4) as u64);
    dev.queue.submit([enc.finish()]);
    let b = dev.read(&rb, (n * rows * 4) as u64).await?;
    Ok(to_f32(&b))
}

/// Run the embedding kernel of `ty` alone: dequantize rows `ids` of W (rows, cols).
pub async fn embed_rows(
    dev: &GpuDevice,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: &[u8],
    ids: &[u32],
) -> Result<Vec<f32>> {
    let n = ids.len();
    let k = Kernels::new(dev, &[], &[ty], &[]).await?;
    let m = GpuMatrix::upload(dev, "w", ty, rows, cols, w)?;
    let tokens = dev.upload("ids", bytemuck::cast_slice(ids))?;
    let x = dev.scratch("x", n * cols, wgpu::BufferUsages::empty())?;
    let step = dev.uniform(
        "step",
        &Step {
            n_tok: n as u32,
            n_out: 1,
            ..Step::default()
        },
    );
    let rb = dev.readback_buffer("x_readback", (n * cols * 4) as u64);
    let mut enc = dev
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for c in &m.chunks {
            let p = dev.uniform(
                "embed",
                &EmbedParams {
                    rows: c.rows as u32,
                    cols: cols as u32,
                    row_bytes: m.row_bytes as u32,
                    row0: c.row0 as u32,
                    scale: 1.0,
                    ..EmbedParams::default()
                },
            );
            let bind = dev.bind_group(&k.embed_layout, &[&step, &p, &c.buf, &tokens, &x]);
            pass.set_pipeline(k.embed_for(ty)?);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(n as u32, 1, 1);
        }
    }
    enc.copy_buffer_to_buffer(&x, 0, &rb, 0, (n * cols * 4) as u64);
    dev.queue.submit([enc.finish()]);
    let b = dev.read(&rb, (n * cols * 4) as u64).await?;
    Ok(to_f32(&b))
}

/// One matrix of [`fused_matvec`]: its type, rows, columns and GGUF bytes.
pub struct FusedMatrix<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

/// Run one fused product alone (matvec_fused.wgsl) over `n` tokens: the matrices multiply
/// x (n, cols); `res` (n, cols or rows) is the residual the norm reads or the product adds to;
/// returns (y, res after the op). y has n × (output rows) values (zeros where not written).
#[allow(clippy::too_many_arguments)]
pub async fn fused_matvec(
    dev: &GpuDevice,
    mats: &[FusedMatrix<'_>],
    x: &[f32],
    res: Option<&[f32]>,
    bias: Option<&[f32]>,
    nw: Option<&[f32]>,
    f: Fuse,
    n: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let Some(first) = mats.first() else {
        return Err(Error::Invalid("no matrix".into()));
    };
    if x.len() != n * first.cols || n == 0 {
        return Err(Error::Invalid("x must hold n × cols values".into()));
    }
    let key = fused::FusedKey {
        types: mats.iter().map(|m| m.ty).collect(),
        gated: f.gated,
    };
    let k = Kernels::new(dev, &[], &[], std::slice::from_ref(&key)).await?;
    let gm: Vec<GpuMatrix> = mats
        .iter()
        .map(|m| GpuMatrix::upload(dev, "w", m.ty, m.rows, m.cols, m.data))
        .collect::<Result<_>>()?;
    let rows = if f.gated {
        first.rows
    } else {
        mats.iter().map(|m| m.rows).sum()
    };
    let u = wgpu::BufferUsages::empty();
    let xb = dev.upload_f32("x", x)?;
    let y = dev.scratch("y", n * rows, u)?;
    let opt = |name: &str, v: Option<&[f32]>| v.map(|v| dev.upload_f32(name, v)).transpose();
    let resb = match res {
        Some(v) => {
            let b = dev.scratch("res", v.len(), u)?;
            dev.queue.write_buffer(&b, 0, bytemuck::cast_slice(v));
            Some(b)
        }
        None => None,
    };
    let (biasb, nwb) = (opt("bias", bias)?, opt("nw", nw)?);
    let dummy = dev.upload("dummy", &[0u8; 16])?;
    let dummy_rw = dev.scratch("dummy_rw", 4, u)?;
    let ctx = ops::Ctx {
        dev,
        k: &k,
        dummy: &dummy,
        dummy_rw: &dummy_rw,
    };
    let step = dev.uniform(
        "step",
        &Step {
            n_tok: n as u32,
            n_out: n as u32,
            ..Step::default()
        },
    );
    let io = ops::FusedIo {
        x: &xb,
        res: resb.as_ref(),
        y: (!f.resid || nw.is_some()).then_some(&y),
        bias: biasb.as_ref(),
        nw: nwb.as_ref(),
    };
    let refs: Vec<&GpuMatrix> = gm.iter().collect();
    let op = ops::fused(&ctx, &step, &refs, io, f, "fused")?;
    let y_bytes = (n * rows * 4) as u64;
    let res_bytes = resb.as_ref().map_or(0, |b| b.size());
    let rb = dev.readback_buffer("readback", y_bytes + res_bytes);
    let mut enc = dev
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        let (pipeline, (gx, gy, gz)) = op.launch(n as u32, n as u32, 0);
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &op.bind, &[]);
        pass.dispatch_workgroups(gx, gy, gz);
    }
    enc.copy_buffer_to_buffer(&y, 0, &rb, 0, y_bytes);
    if let Some(r) = &resb {
        enc.copy_buffer_to_buffer(r, 0, &rb, y_bytes, res_bytes);
    }
    dev.queue.submit([enc.finish()]);
    let b = dev.read(&rb, y_bytes + res_bytes).await?;
    dev.check()?;
    let all = to_f32(&b);
    Ok((all[..n * rows].to_vec(), all[n * rows..].to_vec()))
}

pub(super) fn to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}
