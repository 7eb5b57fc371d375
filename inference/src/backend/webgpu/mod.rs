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
//! * No optional GPU features: no `shader-f16`, no subgroups.
//!
//! Entry points are `async` (the browser's WebGPU is); natively a `block_on` runs them.

mod device;
mod graph;
mod kernels;
mod session;
mod weights;

pub use device::{GpuDevice, GpuOptions};
pub use session::{GpuSession, GpuStats};
pub use weights::{GpuMatrix, GpuModel, GpuUploader};

use graph::{f, Grid};
use kernels::Kernels;

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
    let k = Kernels::new(dev, &[ty], &[]).await?;
    let m = GpuMatrix::upload(dev, "w", ty, rows, cols, w)?;
    let u = wgpu::BufferUsages::empty();
    let xb = dev.upload_f32("x", x)?;
    let y = dev.scratch("y", n * rows, u)?;
    let dummy = dev.upload("dummy", &[0u8; 16])?;
    let step = dev.uniform("step", &[n as u32, 0, 0, n as u32, 0, 0, 0, 0]);
    let rb = dev.readback_buffer("y_readback", (n * rows * 4) as u64);
    let mut enc = dev
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for c in &m.chunks {
            let p = dev.uniform(
                "matvec",
                &[
                    c.rows as u32,
                    cols as u32,
                    m.row_bytes as u32,
                    c.row0 as u32,
                    rows as u32,
                    0,
                    0,
                    0,
                ],
            );
            let bind = dev.bind_group(&k.matvec_layout, &[&step, &p, &c.buf, &xb, &y, &dummy]);
            let grid = Grid::Rows {
                rows: c.rows as u32,
                out: false,
            };
            let (pipeline, (gx, gy, gz)) = if n == 1 {
                (k.matvec1_for(ty)?, Grid::rows1(c.rows as u32))
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
    let k = Kernels::new(dev, &[], &[ty]).await?;
    let m = GpuMatrix::upload(dev, "w", ty, rows, cols, w)?;
    let tokens = dev.upload("ids", bytemuck::cast_slice(ids))?;
    let x = dev.scratch("x", n * cols, wgpu::BufferUsages::empty())?;
    let step = dev.uniform("step", &[n as u32, 0, 0, 1, 0, 0, 0, 0]);
    let rb = dev.readback_buffer("x_readback", (n * cols * 4) as u64);
    let mut enc = dev
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for c in &m.chunks {
            let p = dev.uniform(
                "embed",
                &[
                    c.rows as u32,
                    cols as u32,
                    m.row_bytes as u32,
                    c.row0 as u32,
                    f(1.0),
                    0,
                    0,
                    0,
                ],
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

pub(super) fn to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}
