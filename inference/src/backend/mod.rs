//! Compute backends. `cpu` is the reference and the fallback; `webgpu` runs our WGSL.

pub mod cpu;
#[cfg(not(target_arch = "wasm32"))]
pub mod pool;
#[cfg(feature = "webgpu")]
pub mod webgpu;
