//! Compute backends. `cpu` is the reference and the fallback; `webgpu` (later) runs our WGSL.

pub mod cpu;
#[cfg(feature = "webgpu")]
pub mod webgpu;
