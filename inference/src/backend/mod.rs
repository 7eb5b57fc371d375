//! Compute backends. `cpu` is the reference and the fallback; `webgpu` (later) runs our WGSL.

pub mod cpu;
#[cfg(not(target_arch = "wasm32"))]
pub mod pool;
