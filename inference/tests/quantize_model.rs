//! `chord quantize` end to end: the 4-layer mixed-quant test model is rebuilt from the SmolLM2
//! file (`scripts/smollm2-4layer-mixed.args`, as `scripts/fetch-models.sh` does), byte for byte the
//! same on every run and the same file the golden data of `tests/data/` was made from; bad
//! arguments are one error line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The recipe: one argument per line, `#` comments.
fn recipe() -> Vec<String> {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/smollm2-4layer-mixed.args"
    );
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace().map(str::to_owned))
        .collect()
}

fn chord(args: &[&str], extra: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chord"))
        .args(args)
        .args(extra)
        .output()
        .expect("chord runs")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wasm-chord-quantize-{}-{name}", std::process::id()))
}

fn fnv1a64(b: &[u8]) -> String {
    let h = b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

fn build(out: &Path) -> Vec<u8> {
    let src = common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        src.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        src.display()
    );
    let o = chord(
        &["quantize", src.to_str().unwrap(), out.to_str().unwrap()],
        &recipe(),
    );
    assert!(
        o.status.success(),
        "chord quantize failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bytes = std::fs::read(out).expect("output written");
    std::fs::remove_file(out).ok();
    bytes
}

#[test]
fn four_layer_model_is_rebuilt_byte_for_byte() {
    let a = build(&tmp("a.gguf"));
    let b = build(&tmp("b.gguf"));
    assert!(a == b, "two runs of chord quantize differ");

    // The golden data was made from exactly this file.
    let g = common::golden("smollm2-4layer-mixed");
    assert_eq!(a.len() as u64, g["model"]["size_bytes"].as_u64().unwrap());
    assert_eq!(
        fnv1a64(&a),
        g["model"]["fnv1a64"].as_str().unwrap(),
        "the rebuilt model is not the one tests/data/golden/smollm2-4layer-mixed.json was made from \
         (regenerate with scripts/make-golden.sh)"
    );
    // And it is the model the other tests load.
    let used = std::fs::read(common::model_path("smollm2-4layer-mixed")).unwrap();
    assert!(
        used == a,
        "models/smollm2-4layer-mixed.gguf is stale: run scripts/fetch-models.sh"
    );

    let h = inference::gguf::GgufHeader::parse_complete(&a).unwrap();
    assert_eq!(h.metadata.get_u64("llama.block_count"), Some(4));
    let mut types: Vec<&str> = h.tensors.iter().map(|t| t.ty.name()).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(
        types,
        ["F16", "F32", "Q3_K", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"]
    );
}

#[test]
fn bad_arguments_are_one_line() {
    let src = common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let src = src.to_str().unwrap();
    let out = tmp("never.gguf");
    let out = out.to_str().unwrap();
    for (args, want) in [
        (
            vec!["quantize", src, out, "--type", "Q9_K"],
            "unknown quantization type",
        ),
        (vec!["quantize", src, out], "missing `--type`"),
        (
            vec!["quantize", src, "--type", "Q4_0"],
            "an input and an output",
        ),
        (
            vec!["quantize", src, out, "--type", "Q4_0", "--layers", "99"],
            "the model has 30 layers",
        ),
        (
            vec!["quantize", src, out, "--type", "Q4_0", "--tensor-type", "x"],
            "PATTERN=TYPE",
        ),
        (
            vec!["quantize", "/nonexistent.gguf", out, "--type", "Q4_0"],
            "/nonexistent.gguf",
        ),
    ] {
        let o = chord(&args, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!Path::new(out).exists());
    }
}
