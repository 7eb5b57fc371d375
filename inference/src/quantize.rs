//! Whole-model quantization (`chord quantize`): which type each tensor gets, keeping only the
//! first layers, and the rewritten file.
//!
//! A plan is a base type or preset (`Q4_K_M`, `Q8_0`, …), per-tensor overrides (glob patterns,
//! the first match wins) and optionally a layer count. Only matrices (`*.weight` with two or more
//! dimensions) are requantized; norms and other vectors keep their type. A tensor that already has
//! its target type is copied byte for byte; any other is dequantized to f32 with the engine's
//! reference decoder and quantized with [`crate::quant::quantize`]. The output is deterministic:
//! metadata in key order, tensors in the input's order, same bytes on every run.

use crate::error::{Error, Result};
use crate::gguf::{GgufHeader, GgufWriter, Value};
use crate::quant::{can_quantize, dequantize, quantize, GgmlType};

/// A named recipe: a base type and the few tensors that get more bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub base: GgmlType,
    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub file_type: u32,
    /// `attn_v` and `ffn_down` of some layers, and `output`, in Q6_K (the `_M` presets).
    pub more_bits: bool,
}

const fn preset(name: &'static str, base: GgmlType, file_type: u32, more_bits: bool) -> Preset {
    Preset {
        name,
        base,
        file_type,
        more_bits,
    }
}

/// Every `--type` accepted.
pub const PRESETS: &[Preset] = &[
    preset("F32", GgmlType::F32, 0, false),
    preset("F16", GgmlType::F16, 1, false),
    preset("BF16", GgmlType::BF16, 32, false),
    preset("Q4_0", GgmlType::Q4_0, 2, false),
    preset("Q4_1", GgmlType::Q4_1, 3, false),
    preset("Q8_0", GgmlType::Q8_0, 7, false),
    preset("Q5_0", GgmlType::Q5_0, 8, false),
    preset("Q5_1", GgmlType::Q5_1, 9, false),
    preset("Q3_K", GgmlType::Q3_K, 11, false),
    preset("Q3_K_S", GgmlType::Q3_K, 11, false),
    preset("Q3_K_M", GgmlType::Q3_K, 12, true),
    preset("Q4_K", GgmlType::Q4_K, 14, false),
    preset("Q4_K_S", GgmlType::Q4_K, 14, false),
    preset("Q4_K_M", GgmlType::Q4_K, 15, true),
    preset("Q5_K", GgmlType::Q5_K, 16, false),
    preset("Q5_K_S", GgmlType::Q5_K, 16, false),
    preset("Q5_K_M", GgmlType::Q5_K, 17, true),
    preset("Q6_K", GgmlType::Q6_K, 18, false),
];

impl Preset {
    /// The preset named `name` (case-insensitive).
    pub fn by_name(name: &str) -> Result<Preset> {
        PRESETS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .copied()
            .ok_or_else(|| {
                let all: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                Error::Invalid(format!(
                    "unknown quantization type `{name}` (one of: {})",
                    all.join(" ")
                ))
            })
    }
}

/// One `--tensor-type PATTERN=TYPE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// A glob (`*` = any run of characters) matched against the tensor name, with or without its
    /// `.weight` suffix.
    pub pattern: String,
    pub ty: GgmlType,
}

impl Override {
    /// Parse `PATTERN=TYPE`.
    pub fn parse(s: &str) -> Result<Override> {
        let (pattern, ty) = s
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("tensor type `{s}`: expected PATTERN=TYPE")))?;
        let ty = GgmlType::from_name(ty.trim())
            .filter(|&t| can_quantize(t))
            .ok_or_else(|| Error::Invalid(format!("tensor type `{s}`: unknown type `{ty}`")))?;
        if pattern.is_empty() {
            return Err(Error::Invalid(format!("tensor type `{s}`: empty pattern")));
        }
        Ok(Override {
            pattern: pattern.trim().to_owned(),
            ty,
        })
    }

    fn matches(&self, name: &str) -> bool {
        glob(&self.pattern, name)
            || name
                .strip_suffix(".weight")
                .is_some_and(|n| glob(&self.pattern, n))
    }
}

/// `*` matches any run of characters (including none); everything else is literal.
fn glob(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// What to write.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub preset: Preset,
    pub overrides: Vec<Override>,
    /// Keep only the first this many layers (`blk.N.*` with `N < layers`).
    pub layers: Option<usize>,
}

/// What happened to one tensor of the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorReport {
    pub name: String,
    pub dims: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
    /// Copied byte for byte (the type did not change).
    pub copied: bool,
    /// Why the type differs from the plan (a row that is not a whole number of blocks).
    pub fallback: Option<String>,
}

/// The output file and a line per tensor.
pub struct Quantized {
    pub bytes: Vec<u8>,
    pub tensors: Vec<TensorReport>,
    /// Tensors left out by `layers`.
    pub dropped: usize,
}

/// The layer of a `blk.N.…` tensor.
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// llama.cpp's choice of layers that get more bits in its `_M` mixes: the first and last eighth,
/// and every third layer in between.
fn more_bits_layer(i: usize, n: usize) -> bool {
    let (first, last) = (n / 8, 7 * n / 8);
    i < first || i >= last || (i - first) % 3 == 2
}

/// The planned type of a matrix, before the row-length check.
fn planned(opts: &QuantizeOptions, name: &str, n_layer: usize) -> GgmlType {
    if let Some(o) = opts.overrides.iter().find(|o| o.matches(name)) {
        return o.ty;
    }
    let p = &opts.preset;
    if p.more_bits {
        if name == "output.weight" {
            return GgmlType::Q6_K;
        }
        let role = name.rsplit('.').nth(1).unwrap_or("");
        if matches!(role, "attn_v" | "ffn_down")
            && layer_of(name).is_some_and(|i| more_bits_layer(i, n_layer))
        {
            return GgmlType::Q6_K;
        }
    }
    p.base
}

/// The type a row of `cols` can take instead of `ty` (K-quants need 256, the others 32).
fn fit_row(ty: GgmlType, cols: u64) -> (GgmlType, Option<String>) {
    if cols.is_multiple_of(ty.block_size() as u64) {
        return (ty, None);
    }
    let alt = if cols.is_multiple_of(32) {
        GgmlType::Q8_0
    } else {
        GgmlType::F16
    };
    let why = format!(
        "rows of {cols} are not a multiple of {}'s {} weights",
        ty.name(),
        ty.block_size()
    );
    (alt, Some(why))
}

/// Quantize the GGUF file `bytes` (the whole file) as `opts` says.
pub fn quantize_model(bytes: &[u8], opts: &QuantizeOptions) -> Result<Quantized> {
    let header = GgufHeader::parse_complete(bytes)?;
    let arch = header.metadata.architecture()?.to_owned();
    let count_key = format!("{arch}.block_count");
    let n_layer = header.metadata.require_u64(&count_key)? as usize;
    let keep_layers = match opts.layers {
        Some(0) => return Err(Error::Invalid("--layers must be at least 1".into())),
        Some(n) if n > n_layer => {
            return Err(Error::Invalid(format!(
                "--layers {n}: the model has {n_layer} layers"
            )))
        }
        Some(n) => n,
        None => n_layer,
    };

    let mut w = GgufWriter::new();
    for (k, v) in &header.metadata.0 {
        match k.as_str() {
            "general.alignment" | "general.file_type" | "general.quantization_version" => {}
            _ if *k == count_key => {}
            "general.name" if keep_layers < n_layer => {
                let name = v.as_str().unwrap_or("model");
                w.str_kv(k, &format!("{name} (first {keep_layers} layers)"));
            }
            _ => {
                w.value_kv(k, v);
            }
        }
    }
    w.value_kv(&count_key, &Value::U32(keep_layers as u32));
    w.value_kv("general.file_type", &Value::U32(opts.preset.file_type));
    w.value_kv("general.quantization_version", &Value::U32(2));

    let mut tensors = Vec::new();
    let mut dropped = 0;
    for i in header.file_order() {
        let t = &header.tensors[i];
        if layer_of(&t.name).is_some_and(|l| l >= keep_layers) {
            dropped += 1;
            continue;
        }
        let src = &bytes[header.tensor_range(t)];
        let is_matrix = t.dims.len() >= 2 && t.name.ends_with(".weight");
        let (to, fallback) = if is_matrix {
            fit_row(planned(opts, &t.name, n_layer), t.dims[0])
        } else {
            (t.ty, None)
        };
        let copied = to == t.ty;
        let data = if copied {
            src.to_vec()
        } else {
            let n = usize::try_from(t.n_elements())
                .map_err(|_| Error::Invalid(format!("{}: too many elements", t.name)))?;
            let mut f = vec![0f32; n];
            dequantize(t.ty, src, &mut f);
            quantize(to, &f).map_err(|e| Error::Invalid(format!("{}: {e}", t.name)))?
        };
        w.tensor(&t.name, &t.dims, to.id(), data);
        tensors.push(TensorReport {
            name: t.name.clone(),
            dims: t.dims.clone(),
            from: t.ty,
            to,
            copied,
            fallback,
        });
    }
    Ok(Quantized {
        bytes: w.to_bytes(),
        tensors,
        dropped,
    })
}

#[cfg(test)]
mod tests;
