//! The kernels' uniform blocks, field for field as the WGSL structs of the same name (a size
//! assert each: WGSL's uniform layout rounds a struct up to 16 bytes).

use bytemuck::{Pod, Zeroable};

/// Every kernel's `Step` (binding 0): what changes per forward call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct Step {
    pub n_tok: u32,
    pub start: u32,
    pub out_row0: u32,
    pub n_out: u32,
}

/// matvec.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct MatvecParams {
    pub rows: u32,
    pub cols: u32,
    pub row_bytes: u32,
    pub out_off: u32,
    pub out_stride: u32,
    pub tok_mode: u32,
    pub has_bias: u32,
    pub _pad: u32,
}

/// matvec_fused.wgsl (flags: [`FusedParams::NORM`] …).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct FusedParams {
    pub rows: u32,
    pub cols: u32,
    pub seg1: u32,
    pub seg2: u32,
    pub rb0: u32,
    pub rb1: u32,
    pub rb2: u32,
    pub out_stride: u32,
    pub flags: u32,
    pub eps: f32,
    pub res_scale: f32,
    pub _pad: u32,
}

impl FusedParams {
    pub const NORM: u32 = 1;
    pub const RESID: u32 = 2;
    pub const NEXT: u32 = 4;
    pub const BIAS: u32 = 8;
    pub const GELU: u32 = 16;
    pub const ACT: u32 = 32;
}

/// embed.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct EmbedParams {
    pub rows: u32,
    pub cols: u32,
    pub row_bytes: u32,
    pub row0: u32,
    pub scale: f32,
    pub _pad: [u32; 3],
}

/// norm.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct NormParams {
    pub dim: u32,
    pub eps: f32,
    pub from_out: u32,
    pub has_w: u32,
    pub layer: u32,
    pub scale: f32,
    pub _pad: [u32; 2],
}

/// rope.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct RopeParams {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub hd: u32,
    pub neox: u32,
    pub q_scale: f32,
    pub temp_scale: f32,
    pub temp_floor: u32,
    pub rot: u32,
    pub q_norm: u32,
    pub k_norm: u32,
    pub eps: f32,
    pub _pad: u32,
}

/// attention.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct AttentionParams {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub hd: u32,
    pub window: u32,
    pub n_ctx: u32,
    pub kq_scale: f32,
    pub softcap: f32,
    pub split_keys: u32,
}

/// ffn.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct FfnParams {
    pub n_ff: u32,
    pub gelu: u32,
    pub gated: u32,
    pub _pad: u32,
}

/// argmax.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct ArgmaxParams {
    pub n_vocab: u32,
    pub has_bias: u32,
    pub cap: f32,
    pub scale: f32,
}

/// shift.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct ShiftParams {
    pub n_head_kv: u32,
    pub hd: u32,
    pub neox: u32,
    pub dst: u32,
    pub n: u32,
    pub rot: u32,
    pub _pad: [u32; 2],
}

const _: () = {
    assert!(std::mem::size_of::<Step>() == 16);
    assert!(std::mem::size_of::<MatvecParams>() == 32);
    assert!(std::mem::size_of::<FusedParams>() == 48);
    assert!(std::mem::size_of::<EmbedParams>() == 32);
    assert!(std::mem::size_of::<NormParams>() == 32);
    assert!(std::mem::size_of::<RopeParams>() == 48);
    assert!(std::mem::size_of::<AttentionParams>() == 32);
    assert!(std::mem::size_of::<FfnParams>() == 16);
    assert!(std::mem::size_of::<ArgmaxParams>() == 16);
    assert!(std::mem::size_of::<ShiftParams>() == 32);
};
