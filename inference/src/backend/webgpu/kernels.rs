//! The kernel table: WGSL sources (from `shaders/`), bind group layouts and compute pipelines.
//!
//! Quantized-weight kernels (matvec, embedding lookup) are specialised per [`GgmlType`] by
//! prepending the block constants and the matching dequant family, and naming its decoder.

use std::collections::HashMap;

use super::device::{Bind, GpuDevice};
use super::fused::{fused_source, FusedKey};
use crate::error::{Error, Result};
use crate::quant::GgmlType;

pub(super) const DEQUANT_COMMON: &str = include_str!("../../../../shaders/dequant_common.wgsl");
const DEQUANT_FLOAT: &str = include_str!("../../../../shaders/dequant_float.wgsl");
const DEQUANT_LEGACY: &str = include_str!("../../../../shaders/dequant_legacy.wgsl");
const DEQUANT_K: &str = include_str!("../../../../shaders/dequant_k.wgsl");
const MATVEC: &str = include_str!("../../../../shaders/matvec.wgsl");
/// The K step of the tiled batch products (`main` of matvec.wgsl and matvec_fused.wgsl).
pub(super) const TILE: &str = include_str!("../../../../shaders/tile.wgsl");
pub(super) const DOT: &str = include_str!("../../../../shaders/dot.wgsl");
pub(super) const DOT_K: &str = include_str!("../../../../shaders/dot_k.wgsl");
const EMBED: &str = include_str!("../../../../shaders/embed.wgsl");
const NORM: &str = include_str!("../../../../shaders/norm.wgsl");
const ROPE: &str = include_str!("../../../../shaders/rope.wgsl");
const ATTENTION: &str = include_str!("../../../../shaders/attention.wgsl");
const FFN: &str = include_str!("../../../../shaders/ffn.wgsl");
const ARGMAX: &str = include_str!("../../../../shaders/argmax.wgsl");
const SHIFT: &str = include_str!("../../../../shaders/shift.wgsl");

/// A kernel that touches the KV cache with the cache's element type: `array<KV>` and `KV(…)`
/// conversions become f16 (with `enable f16;`) or f32.
fn kv_source(src: &str, f16: bool) -> String {
    let ty = if f16 { "f16" } else { "f32" };
    let body = src
        .replace("array<KV>", &format!("array<{ty}>"))
        .replace("KV(", &format!("{ty}("));
    if f16 {
        format!("enable f16;\n{body}")
    } else {
        body
    }
}

/// Tokens per matvec workgroup (`NT` in matvec.wgsl).
pub(crate) const MATVEC_NT: u32 = 32;
/// Rows per matvec workgroup (`RPW` in matvec.wgsl).
pub(crate) const MATVEC_RPW: u32 = 64;
/// Rows per workgroup of the one-token matvec (`RPW1`, entry point `main1`).
pub(crate) const MATVEC1_RPW: u32 = 4;

/// How a type is laid out for the kernels: bytes per "block" of `32 × subs` elements.
pub(crate) fn block_geometry(ty: GgmlType) -> (u32, u32) {
    match ty {
        GgmlType::F32 => (128, 1),
        GgmlType::F16 | GgmlType::BF16 => (64, 1),
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
            (ty.type_size() as u32, 1)
        }
        _ => (ty.type_size() as u32, 8),
    }
}

pub(super) fn decoder(ty: GgmlType) -> (&'static str, &'static str) {
    match ty {
        GgmlType::F32 => ("decode_f32", DEQUANT_FLOAT),
        GgmlType::F16 => ("decode_f16", DEQUANT_FLOAT),
        GgmlType::BF16 => ("decode_bf16", DEQUANT_FLOAT),
        GgmlType::Q4_0 => ("decode_q4_0", DEQUANT_LEGACY),
        GgmlType::Q4_1 => ("decode_q4_1", DEQUANT_LEGACY),
        GgmlType::Q5_0 => ("decode_q5_0", DEQUANT_LEGACY),
        GgmlType::Q5_1 => ("decode_q5_1", DEQUANT_LEGACY),
        GgmlType::Q8_0 => ("decode_q8_0", DEQUANT_LEGACY),
        GgmlType::Q2_K => ("decode_q2_k", DEQUANT_K),
        GgmlType::Q3_K => ("decode_q3_k", DEQUANT_K),
        GgmlType::Q4_K => ("decode_q4_k", DEQUANT_K),
        GgmlType::Q5_K => ("decode_q5_k", DEQUANT_K),
        GgmlType::Q6_K => ("decode_q6_k", DEQUANT_K),
    }
}

/// The fused dequantize-and-dot of `ty` in dot.wgsl (`dot_dq`: decoder, then dot).
pub(super) fn fused_dot(ty: GgmlType) -> &'static str {
    match ty {
        GgmlType::Q4_0 => "dot_q4_0",
        GgmlType::Q4_1 => "dot_q4_1",
        GgmlType::Q8_0 => "dot_q8_0",
        GgmlType::Q4_K => "dot_q4_k",
        GgmlType::Q6_K => "dot_q6_k",
        _ => "dot_dq",
    }
}

/// The WGSL of a quantized-weight kernel (`MATVEC` or `EMBED`) for `ty`: block constants, the
/// decoders of its family and, for the matvec, the fused dots; `DECODE(` and `DOT(` name them.
pub(crate) fn quant_source(main: &str, ty: GgmlType) -> String {
    let (bytes, subs) = block_geometry(ty);
    let (name, family) = decoder(ty);
    let (dot, dot_k) = match (main.contains("DOT("), subs) {
        (false, _) => ("", ""),
        (true, 8) => (DOT, DOT_K),
        (true, _) => (DOT, ""),
    };
    format!(
        "const BLOCK_BYTES: u32 = {bytes}u;\nconst SUBS: u32 = {subs}u;\n{DEQUANT_COMMON}\n{family}\n{dot}\n{dot_k}\n{main}"
    )
    .replace("DECODE(", &format!("{name}("))
    .replace("DOT(", &format!("{}(", fused_dot(ty)))
}

/// Compiled pipelines and their layouts.
pub(crate) struct Kernels {
    pub matvec_layout: wgpu::BindGroupLayout,
    pub embed_layout: wgpu::BindGroupLayout,
    pub norm_layout: wgpu::BindGroupLayout,
    pub rope_layout: wgpu::BindGroupLayout,
    pub attn_layout: wgpu::BindGroupLayout,
    pub ffn_layout: wgpu::BindGroupLayout,
    pub argmax_layout: wgpu::BindGroupLayout,
    pub shift_layout: wgpu::BindGroupLayout,
    pub fused_layout: wgpu::BindGroupLayout,
    pub matvec: HashMap<GgmlType, wgpu::ComputePipeline>,
    /// One token per product (decoding): `main1`, more threads per row.
    pub matvec1: HashMap<GgmlType, wgpu::ComputePipeline>,
    pub embed: HashMap<GgmlType, wgpu::ComputePipeline>,
    /// The fused products (matvec_fused.wgsl): (`main`, `main1`) of each key.
    pub fused: HashMap<FusedKey, (wgpu::ComputePipeline, wgpu::ComputePipeline)>,
    pub norm_rows: wgpu::ComputePipeline,
    pub scale_rows: wgpu::ComputePipeline,
    pub add_norm: wgpu::ComputePipeline,
    pub rope: wgpu::ComputePipeline,
    pub attention: wgpu::ComputePipeline,
    pub attn_combine: wgpu::ComputePipeline,
    pub ffn: wgpu::ComputePipeline,
    pub finish: wgpu::ComputePipeline,
    pub argmax: wgpu::ComputePipeline,
    /// The context shift of one layer's cache (shift.wgsl).
    pub shift: wgpu::ComputePipeline,
}

impl Kernels {
    /// Build every pipeline: the fixed kernels, matvec for `matvec_types`, embedding lookup
    /// for `embed_types` and the fused products `fused`.
    pub async fn new(
        dev: &GpuDevice,
        matvec_types: &[GgmlType],
        embed_types: &[GgmlType],
        fused_keys: &[FusedKey],
    ) -> Result<Kernels> {
        use Bind::*;
        let matvec_layout = dev.layout("matvec", &[Uniform, Uniform, Read, Read, Write, Read]);
        let embed_layout = dev.layout("embed", &[Uniform, Uniform, Read, Read, Write]);
        let norm_layout = dev.layout("norm", &[Uniform, Uniform, Read, Read, Write]);
        let rope_layout = dev.layout(
            "rope",
            &[
                Uniform, Uniform, Read, Read, Write, Write, Write, Read, Read,
            ],
        );
        let fused_layout = dev.layout(
            "matvec_fused",
            &[
                Uniform, Uniform, Read, Read, Read, Read, Write, Write, Read, Read,
            ],
        );
        let mut fused = HashMap::new();
        for key in fused_keys {
            if !fused.contains_key(key) {
                let src = fused_source(key);
                let label = key.label();
                let main = dev.pipeline(&label, &src, "main", &fused_layout).await?;
                let one = dev.pipeline(&label, &src, "main1", &fused_layout).await?;
                fused.insert(key.clone(), (main, one));
            }
        }
        let attn_layout = dev.layout(
            "attention",
            &[Uniform, Uniform, Read, Read, Read, Write, Write, Write],
        );
        let ffn_layout = dev.layout("ffn", &[Uniform, Uniform, Read, Write]);
        let argmax_layout = dev.layout("argmax", &[Uniform, Uniform, Read, Write, Write]);
        let shift_layout = dev.layout("shift", &[Uniform, Read, Read, Read, Write, Write]);
        let mut matvec = HashMap::new();
        let mut matvec1 = HashMap::new();
        for &ty in matvec_types {
            if let std::collections::hash_map::Entry::Vacant(slot) = matvec.entry(ty) {
                let src = format!("{}\n{TILE}", quant_source(MATVEC, ty));
                let label = format!("matvec_{}", ty.name());
                slot.insert(dev.pipeline(&label, &src, "main", &matvec_layout).await?);
                let one = dev.pipeline(&label, &src, "main1", &matvec_layout).await?;
                matvec1.insert(ty, one);
            }
        }
        let (rope, attention, shift) = (
            kv_source(ROPE, dev.f16_kv),
            kv_source(ATTENTION, dev.f16_kv),
            kv_source(SHIFT, dev.f16_kv),
        );
        let mut embed = HashMap::new();
        for &ty in embed_types {
            if let std::collections::hash_map::Entry::Vacant(slot) = embed.entry(ty) {
                let src = quant_source(EMBED, ty);
                let p = dev
                    .pipeline(&format!("embed_{}", ty.name()), &src, "main", &embed_layout)
                    .await?;
                slot.insert(p);
            }
        }
        Ok(Kernels {
            norm_rows: dev
                .pipeline("norm_rows", NORM, "norm_rows", &norm_layout)
                .await?,
            scale_rows: dev
                .pipeline("scale_rows", NORM, "scale_rows", &norm_layout)
                .await?,
            add_norm: dev
                .pipeline("add_norm", NORM, "add_norm", &norm_layout)
                .await?,
            rope: dev.pipeline("rope", &rope, "main", &rope_layout).await?,
            attention: dev
                .pipeline("attention", &attention, "main", &attn_layout)
                .await?,
            attn_combine: dev
                .pipeline("attention_combine", &attention, "combine", &attn_layout)
                .await?,
            ffn: dev.pipeline("ffn", FFN, "main", &ffn_layout).await?,
            finish: dev
                .pipeline("finish", ARGMAX, "finish", &argmax_layout)
                .await?,
            argmax: dev
                .pipeline("argmax", ARGMAX, "argmax", &argmax_layout)
                .await?,
            shift: dev.pipeline("shift", &shift, "main", &shift_layout).await?,
            matvec_layout,
            embed_layout,
            norm_layout,
            rope_layout,
            attn_layout,
            ffn_layout,
            argmax_layout,
            shift_layout,
            fused_layout,
            fused,
            matvec,
            matvec1,
            embed,
        })
    }

    pub fn matvec_for(&self, ty: GgmlType) -> Result<&wgpu::ComputePipeline> {
        self.matvec
            .get(&ty)
            .ok_or_else(|| Error::Gpu(format!("no matvec kernel built for {}", ty.name())))
    }

    /// The one-token matvec of `ty`.
    pub fn matvec1_for(&self, ty: GgmlType) -> Result<&wgpu::ComputePipeline> {
        self.matvec1
            .get(&ty)
            .ok_or_else(|| Error::Gpu(format!("no matvec kernel built for {}", ty.name())))
    }

    /// The fused product `key`: (`main`, `main1`).
    pub fn fused_for(
        &self,
        key: &FusedKey,
    ) -> Result<&(wgpu::ComputePipeline, wgpu::ComputePipeline)> {
        self.fused
            .get(key)
            .ok_or_else(|| Error::Gpu(format!("no fused kernel built for {}", key.label())))
    }

    pub fn embed_for(&self, ty: GgmlType) -> Result<&wgpu::ComputePipeline> {
        self.embed
            .get(&ty)
            .ok_or_else(|| Error::Gpu(format!("no embedding kernel built for {}", ty.name())))
    }
}
