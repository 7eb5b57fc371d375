//! Compute backends. `cpu` is the reference and the fallback; `webgpu` (later) runs our WGSL.

pub mod cpu;
