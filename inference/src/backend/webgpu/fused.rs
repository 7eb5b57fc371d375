//! The fused products of a layer (`shaders/matvec_fused.wgsl`): which pipelines a model needs
//! ([`FusedKey`]: the segments' weight types and whether the product is gated) and their WGSL.
//!
//! Each segment's matrix has its own binding (`w0`..`w2`) and type, so each gets its own copy of
//! the dequant and dot sources with every function (and `wq`) renamed by the segment's suffix;
//! `part1` (one token's partial dot over a row) and `deq` (decode one chunk into `dq`) dispatch
//! over the segments.

use super::kernels::{block_geometry, decoder, fused_dot, DEQUANT_COMMON, DOT, DOT_K, TILE};
use crate::quant::GgmlType;

pub(crate) const MATVEC_FUSED: &str = include_str!("../../../../shaders/matvec_fused.wgsl");

/// Rows per workgroup of the fused kernels (`RPW` / `RPW1` in matvec_fused.wgsl).
pub(crate) const FUSED_RPW: u32 = 64;
pub(crate) const FUSED_RPW1: u32 = 4;

/// One fused pipeline: the weight type of each segment (1 to 3) and the mode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FusedKey {
    pub types: Vec<GgmlType>,
    pub gated: bool,
}

impl FusedKey {
    pub fn label(&self) -> String {
        let t: Vec<&str> = self.types.iter().map(|t| t.name()).collect();
        format!(
            "matvec_fused{}_{}",
            if self.gated { "_gated" } else { "" },
            t.join("_")
        )
    }

    /// Workgroups over output `rows` for a batch (`main`) and for one token (`main1`).
    pub fn groups(&self, rows: u32) -> (u32, u32) {
        let per = |rpw: u32| if self.gated { rpw / 2 } else { rpw };
        (
            rows.div_ceil(per(FUSED_RPW)),
            rows.div_ceil(per(FUSED_RPW1)),
        )
    }
}

/// Append `suffix` to every identifier of `src` that is in `names`.
fn rename(src: &str, names: &[String], suffix: &str) -> String {
    let mut out = String::with_capacity(src.len() + 1024);
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let id = &src[start..i];
            out.push_str(id);
            if names.iter().any(|n| n == id) {
                out.push_str(suffix);
            }
        } else {
            let start = i;
            while i < b.len() && !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
                // identifiers never start inside a number: skip digits with what precedes them
                i += 1;
            }
            out.push_str(&src[start..i]);
        }
    }
    out
}

/// The names a source defines with `fn`.
fn fn_names(src: &str) -> Vec<String> {
    src.split("fn ")
        .skip(1)
        .filter_map(|rest| {
            let id: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!id.is_empty()).then_some(id)
        })
        .collect()
}

/// Segment `s`'s dequant and dot sources for `ty`, renamed by `_s{s}`, its matrix read from
/// `w{s}`; returns (source, decoder name, dot name).
fn segment_source(s: usize, ty: GgmlType) -> (String, String, String) {
    let (bytes, subs) = block_geometry(ty);
    let (dec, family) = decoder(ty);
    let dot_k = if subs == 8 { DOT_K } else { "" };
    let common = DEQUANT_COMMON.replace("var<private> dq: array<f32, 32>;", "");
    let body = format!("{common}\n{family}\n{DOT}\n{dot_k}\n")
        .replace("DECODE(", &format!("{dec}("))
        .replace("DOT(", &format!("{}(", fused_dot(ty)));
    let mut names = fn_names(&body);
    names.push("BLOCK_BYTES".into());
    names.push("SUBS".into());
    let suffix = format!("_s{s}");
    let src = format!(
        "const BLOCK_BYTES_s{s}: u32 = {bytes}u;\nconst SUBS_s{s}: u32 = {subs}u;\n{}",
        rename(&body, &names, &suffix).replace("wq[", &format!("w{s}["))
    );
    (
        src,
        format!("{dec}{suffix}"),
        format!("{}{suffix}", fused_dot(ty)),
    )
}

/// The WGSL of the fused kernel `key`.
pub(crate) fn fused_source(key: &FusedKey) -> String {
    let mut src = format!("const GATED: bool = {};\n", key.gated);
    let mut part1 = String::from(
        "fn part1(seg: u32, r: u32, sub: u32) -> f32 {\n    let nch = p.cols / 32u;\n    var acc = 0.0;\n    switch seg {\n",
    );
    let mut deq = String::from("fn deq(seg: u32, r: u32, j: u32) {\n    switch seg {\n");
    for (s, &ty) in key.types.iter().enumerate() {
        let (seg, dec, dot) = segment_source(s, ty);
        src.push_str(&seg);
        let case = if s + 1 == key.types.len() {
            "default".to_string()
        } else {
            format!("case {s}u")
        };
        part1.push_str(&format!(
            "        {case}: {{\n            let rb = r * p.rb{s};\n            for (var j = sub; j < nch; j += TPR1) {{\n                acc += {dot}(rb + (j / SUBS_s{s}) * BLOCK_BYTES_s{s}, j % SUBS_s{s}, j * 32u);\n            }}\n        }}\n"
        ));
        deq.push_str(&format!(
            "        {case}: {{\n            {dec}(r * p.rb{s} + (j / SUBS_s{s}) * BLOCK_BYTES_s{s}, j % SUBS_s{s});\n        }}\n"
        ));
    }
    part1.push_str("    }\n    return acc;\n}\n");
    deq.push_str("    }\n}\n");
    format!("{src}\n{part1}\n{deq}\n{MATVEC_FUSED}\n{TILE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tile shapes the host's grids assume are the shaders' own.
    #[test]
    fn shader_tiles_match_the_grids() {
        use super::super::kernels::{MATVEC_NT, MATVEC_RPW};
        let konst = |src: &str, name: &str| -> u32 {
            let pat = format!("const {name}: u32 = ");
            let at = src.find(&pat).unwrap_or_else(|| panic!("no const {name}"));
            let rest = &src[at + pat.len()..];
            rest[..rest.find('u').expect("a u32 literal")]
                .parse()
                .expect("a number")
        };
        // tile.wgsl's tile serves both batch kernels
        assert_eq!(konst(TILE, "NT"), MATVEC_NT);
        assert_eq!(konst(TILE, "RPW"), MATVEC_RPW);
        assert_eq!(konst(TILE, "RPW"), FUSED_RPW);
        assert_eq!(konst(MATVEC_FUSED, "RPW1"), FUSED_RPW1);
    }

    #[test]
    fn renaming_touches_whole_identifiers_only() {
        let names = vec!["u32_at".to_string(), "x4".to_string()];
        assert_eq!(
            rename("u32_at(a) + xu32_at(b) + x4(1u) + hx4 + x", &names, "_s1"),
            "u32_at_s1(a) + xu32_at(b) + x4_s1(1u) + hx4 + x"
        );
    }

    #[test]
    fn every_segment_reads_its_own_binding() {
        let key = FusedKey {
            types: vec![GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K],
            gated: false,
        };
        let src = fused_source(&key);
        assert!(src.contains("dot_q4_k_s0(") && src.contains("dot_q4_k_s1("));
        assert!(src.contains("dot_q6_k_s2(") && src.contains("w2["));
        assert!(!src.contains("wq["), "a segment still reads `wq`");
        assert!(!src.contains("DECODE(") && !src.contains("DOT("));
    }
}
