use super::*;
use crate::gguf::GgufHeader;

#[test]
fn globs() {
    assert!(glob("blk.*.ffn_down", "blk.12.ffn_down"));
    assert!(glob("*", "anything"));
    assert!(glob("blk.0.attn_q", "blk.0.attn_q"));
    assert!(!glob("blk.0.attn_q", "blk.0.attn_qkv"));
    assert!(glob("*attn*", "blk.3.attn_v"));
    assert!(!glob("blk.*.ffn_up", "blk.1.ffn_down"));
    assert!(glob("a*b*c", "aXXbYYc"));
    assert!(!glob("a*b*c", "aXXcYYb"));
    assert!(!glob("ab*ba", "aba"));
    let o = Override::parse("blk.*.ffn_down=q6_k").unwrap();
    assert_eq!(o.ty, GgmlType::Q6_K);
    assert!(o.matches("blk.7.ffn_down.weight"));
    assert!(Override::parse("blk.0=Q9").is_err());
    assert!(Override::parse("noequals").is_err());
    assert!(Override::parse("x=Q2_K").is_err());
    assert!(Preset::by_name("q4_k_m").is_ok());
    assert!(Preset::by_name("Q4_K_X").is_err());
}

#[test]
fn medium_mix_gives_some_layers_more_bits() {
    let opts = QuantizeOptions {
        preset: Preset::by_name("Q4_K_M").unwrap(),
        overrides: vec![Override::parse("blk.5.attn_v=Q8_0").unwrap()],
        layers: None,
    };
    let ty = |n: &str| planned(&opts, n, 16);
    assert_eq!(ty("output.weight"), GgmlType::Q6_K);
    assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::Q6_K);
    assert_eq!(ty("blk.15.attn_v.weight"), GgmlType::Q6_K);
    assert_eq!(ty("blk.3.attn_v.weight"), GgmlType::Q4_K);
    assert_eq!(ty("blk.4.attn_v.weight"), GgmlType::Q6_K);
    assert_eq!(ty("blk.5.attn_v.weight"), GgmlType::Q8_0);
    assert_eq!(ty("blk.3.attn_q.weight"), GgmlType::Q4_K);
    assert_eq!(fit_row(GgmlType::Q4_K, 576).0, GgmlType::Q8_0);
    assert_eq!(fit_row(GgmlType::Q4_K, 100).0, GgmlType::F16);
    assert_eq!(fit_row(GgmlType::Q4_0, 96), (GgmlType::Q4_0, None));
}

fn tiny_model() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.str_kv("general.architecture", "llama")
        .str_kv("general.name", "tiny")
        .u32_kv("llama.block_count", 3)
        .u32_kv("general.file_type", 0);
    let mat = |seed: usize| -> Vec<f32> {
        (0..256 * 4)
            .map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 - 500.0) / 700.0)
            .collect()
    };
    w.f32_tensor("token_embd.weight", &[256, 4], &mat(1));
    for l in 0..3 {
        w.f32_tensor(&format!("blk.{l}.attn_norm.weight"), &[256], &[1.0; 256]);
        w.f32_tensor(&format!("blk.{l}.attn_q.weight"), &[256, 4], &mat(l + 2));
        w.f32_tensor(&format!("blk.{l}.ffn_down.weight"), &[256, 4], &mat(l + 9));
    }
    w.to_bytes()
}

#[test]
fn keeps_layers_and_applies_overrides() {
    let src = tiny_model();
    let opts = QuantizeOptions {
        preset: Preset::by_name("Q8_0").unwrap(),
        overrides: vec![
            Override::parse("blk.1.attn_q=Q4_K").unwrap(),
            Override::parse("blk.*.ffn_down=Q6_K").unwrap(),
            Override::parse("token_embd=F32").unwrap(),
        ],
        layers: Some(2),
    };
    let out = quantize_model(&src, &opts).unwrap();
    assert_eq!(out.dropped, 3);
    let h = GgufHeader::parse_complete(&out.bytes).unwrap();
    assert_eq!(h.metadata.get_u64("llama.block_count"), Some(2));
    assert_eq!(h.metadata.get_u64("general.file_type"), Some(7));
    assert_eq!(
        h.metadata.get_str("general.name"),
        Some("tiny (first 2 layers)")
    );
    let ty = |n: &str| h.tensor(n).map(|t| t.ty);
    assert_eq!(ty("token_embd.weight"), Some(GgmlType::F32));
    assert_eq!(ty("blk.0.attn_norm.weight"), Some(GgmlType::F32));
    assert_eq!(ty("blk.0.attn_q.weight"), Some(GgmlType::Q8_0));
    assert_eq!(ty("blk.1.attn_q.weight"), Some(GgmlType::Q4_K));
    assert_eq!(ty("blk.1.ffn_down.weight"), Some(GgmlType::Q6_K));
    assert_eq!(ty("blk.2.attn_q.weight"), None);
    assert!(out
        .tensors
        .iter()
        .any(|t| t.copied && t.name == "token_embd.weight"));
    // The weights survive: Q8_0 of a matrix is within half a step of the original.
    let t = h.tensor("blk.0.attn_q.weight").unwrap();
    let mut y = vec![0f32; 1024];
    dequantize(t.ty, &out.bytes[h.tensor_range(t)], &mut y);
    let s = GgufHeader::parse_complete(&src).unwrap();
    let st = s.tensor("blk.0.attn_q.weight").unwrap();
    let mut x = vec![0f32; 1024];
    dequantize(st.ty, &src[s.tensor_range(st)], &mut x);
    let worst = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 0.01, "Q8_0 error {worst}");
    // Deterministic: the same bytes again; requantizing to the same types copies everything.
    assert_eq!(quantize_model(&src, &opts).unwrap().bytes, out.bytes);
    let again = quantize_model(
        &out.bytes,
        &QuantizeOptions {
            layers: None,
            ..opts
        },
    )
    .unwrap();
    assert!(again.tensors.iter().all(|t| t.copied));
    assert_eq!(again.bytes.len(), out.bytes.len());
}

#[test]
fn bad_layer_counts() {
    let src = tiny_model();
    for n in [0, 4] {
        let opts = QuantizeOptions {
            preset: Preset::by_name("Q8_0").unwrap(),
            overrides: vec![],
            layers: Some(n),
        };
        assert!(quantize_model(&src, &opts).is_err());
    }
}
