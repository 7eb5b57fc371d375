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

/// `chord split` and split models: the 4-layer model in 3 parts (llama.cpp's gguf-split layout)
/// loads by its first part — from disk through the CLI, and through the loader in chunks of
/// every size, chunks that straddle two parts included — with the same logits as the whole file;
/// a missing, foreign or lone part is one clear error.
#[test]
fn split_models_load_as_one() {
    use inference::loader::ModelLoader;
    use inference::model::Model;

    let whole = common::model_path("smollm2-4layer-mixed");
    let dir = tmp("split");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let prefix = dir.join("m");
    let out = chord(
        &[
            "split",
            whole.to_str().expect("path"),
            "--parts",
            "3",
            "--out",
        ],
        &[prefix.display().to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parts: Vec<PathBuf> = (1..=3)
        .map(|i| dir.join(format!("m-{i:05}-of-00003.gguf")))
        .collect();
    let bytes: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| std::fs::read(p).expect("part"))
        .collect();
    let sizes: Vec<u64> = bytes.iter().map(|b| b.len() as u64).collect();
    eprintln!("parts: {sizes:?}");
    assert!(
        sizes.iter().all(|&s| s > 1 << 20),
        "parts of about equal size: {sizes:?}"
    );

    // The loader: every chunk size gives the same model as the whole file.
    let reference = Model::load_file(&whole).expect("whole model");
    let toks: Vec<u32> = vec![1, 504, 3458, 282, 4649];
    let want = common::logits(
        &mut common::cpu_session(
            &std::rc::Rc::new(reference),
            64,
            1,
            inference::quant::Activations::F32,
        ),
        &toks,
        false,
    );
    let all: Vec<u8> = bytes.concat();
    for chunk in [4096usize, 1 << 20, 7_777_777, all.len()] {
        let mut l = ModelLoader::new_split(&sizes);
        for c in all.chunks(chunk) {
            l.push(c).expect("push");
        }
        let m = std::rc::Rc::new(l.finish().expect("split model"));
        let got = common::logits(
            &mut common::cpu_session(&m, 64, 1, inference::quant::Activations::F32),
            &toks,
            false,
        );
        assert_eq!(got, want, "chunks of {chunk}");
    }

    // The CLI loads it by its first part, greedy tokens as from the whole file.
    let gen = |model: &Path| {
        let o = chord(
            &[
                "generate",
                "--max-tokens",
                "6",
                "--prompt",
                "The capital of France is",
                "--json",
                "--model",
            ],
            &[model.display().to_string()],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v["tokens"].clone()
    };
    assert_eq!(gen(&parts[0]), gen(&whole));

    // Errors: a lone later part, parts out of order, a part missing, a foreign file.
    let err = |model: &Path| {
        let o = chord(
            &["generate", "--prompt", "x", "--model"],
            &[model.display().to_string()],
        );
        let e = String::from_utf8_lossy(&o.stderr).trim().to_owned();
        assert!(!o.status.success() && e.lines().count() == 1, "{e}");
        e
    };
    assert!(err(&parts[1]).contains("part 2 of a model split into 3 files"));
    let mut l = ModelLoader::new_split(&[sizes[1], sizes[0], sizes[2]]);
    let e = [&bytes[1], &bytes[0]]
        .iter()
        .try_for_each(|b| l.push(b))
        .expect_err("out of order")
        .to_string();
    assert!(e.contains("give every part, in order"), "{e}");
    let mut l = ModelLoader::new_split(&sizes[..2]);
    let e = bytes[..2]
        .iter()
        .try_for_each(|b| l.push(b))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("part 1 of 3"), "two of three parts given: {e}");
    std::fs::remove_file(&parts[2]).expect("remove");
    assert!(err(&parts[0]).contains("m-00003-of-00003.gguf is missing"));
    let _ = std::fs::remove_dir_all(&dir);
}
