//! Shared test helpers: where the real models and the golden data live.
#![allow(dead_code)]

use std::path::PathBuf;

/// `WASM_CHORD_MODELS`, default `<repo>/models` (filled by `scripts/fetch-models.sh`).
pub fn models_dir() -> PathBuf {
    std::env::var_os("WASM_CHORD_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models")))
}

/// `WASM_CHORD_SHARED`, default `<repo>/../shared` (golden data, reference logits, the 4-layer model).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("WASM_CHORD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")))
}

/// Path of a model by golden-file stem; panics with the fix when it is missing.
pub fn model_path(golden: &str) -> PathBuf {
    let p = match golden {
        "smollm2-135m-q4_1" => models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf"),
        "gemma-3-270m-q4_k_m" => models_dir().join("gemma-3-270m-q4_k_m.gguf"),
        "qwen2.5-coder-1.5b-q4_k_m" => models_dir().join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        "smollm2-4layer-mixed" => shared_dir().join("models/smollm2-4layer-mixed.gguf"),
        other => panic!("unknown golden file {other}"),
    };
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        p.display()
    );
    p
}

pub fn golden(name: &str) -> serde_json::Value {
    let p = shared_dir().join(format!("golden/{name}.json"));
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).expect("golden JSON")
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Reference logits (float64 exact math, stored as f32) for a public prompt, if present.
pub fn reference_logits(golden: &str, prompt: &str) -> Option<Vec<f32>> {
    let p = shared_dir().join(format!("reference/{golden}/last.{prompt}.f32"));
    let b = std::fs::read(p).ok()?;
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

pub const GOLDEN: [&str; 4] = [
    "smollm2-4layer-mixed",
    "smollm2-135m-q4_1",
    "gemma-3-270m-q4_k_m",
    "qwen2.5-coder-1.5b-q4_k_m",
];
