//! Every supported architecture against llama.cpp, on tiny random-weight models
//! (`common/tiny.rs`): the logits of every position of `tiny_sequences()` must have llama.cpp's
//! top-1 (or, where llama.cpp's top two are within 2e-2, either of them) and be within 1e-2 of
//! its logits (golden files `tests/data/arch/<model>.json`, made by
//! `scripts/make-arch-golden.sh`; see `tests/data/README.md`). Needs no model download.
//!
//! `TINY_OUT=dir cargo test -p inference --test architectures -- --ignored write_tiny_models`
//! writes the tiny models (and `sequences.txt`) for the golden script.

mod common;

use std::rc::Rc;

use common::tiny::{
    self, arch_of, check_logits, fnv1a_bytes, golden, tiny_model, tiny_sequences, ARCHS, N_CTX,
    STRETCH_ARCHS, TOL,
};
use common::{cpu_session, logits};
use inference::model::Model;
use inference::quant::Activations;

fn load(name: &str) -> Rc<Model> {
    let bytes = tiny_model(name);
    let model =
        Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("tiny {name} does not load: {e}"));
    Rc::new(model)
}

fn cpu_check(name: &str) {
    let model = load(name);
    assert_eq!(model.hp.arch.name(), arch_of(name), "{name}: architecture");
    let w = check_logits(name, model.hp.n_vocab, TOL, |toks| {
        let mut s = cpu_session(&model, N_CTX, 1, Activations::F32);
        logits(&mut s, toks, true)
    });
    eprintln!(
        "{name} (CPU): {} positions agree; max |Δ| {:.2e} (seq {}, pos {}, token {})",
        w.positions, w.delta, w.at.0, w.at.1, w.at.2
    );
}

macro_rules! arch_tests {
    ($($test:ident => $name:literal $(, $ignore:literal)?;)*) => {$(
        #[test]
        $(#[ignore = $ignore])?
        fn $test() {
            cpu_check($name);
        }
    )*};
}

arch_tests! {
    llama => "llama";
    qwen2 => "qwen2";
    gemma3 => "gemma3";
    qwen3 => "qwen3";
    gemma2 => "gemma2";
    phi3_short_factors => "phi3";
    phi3_long_factors => "phi3-long";
    phi3_partial_rope => "phi3-partial";
    smollm3 => "smollm3";
    granite => "granite";
    olmo2 => "olmo2";
    starcoder2 => "starcoder2";
    mistral3 => "mistral3";
    gemma4 => "gemma4", "stretch: not implemented";
    qwen35 => "qwen35", "stretch: not implemented";
}

/// Every model of ARCHS has a test above (a new entry needs one).
#[test]
fn every_architecture_has_a_test() {
    let src = include_str!("architectures.rs");
    for name in ARCHS.iter().chain(STRETCH_ARCHS) {
        assert!(
            src.contains(&format!("=> \"{name}\"")),
            "no test for tiny model `{name}`"
        );
    }
}

/// The golden files were made from the models and sequences generated now: same token ids, same
/// vocabulary size, same architecture (a generator change without regenerating fails here, not as
/// a confusing logit gap).
#[test]
fn golden_files_match_the_generator() {
    let seqs = tiny_sequences();
    for &name in ARCHS {
        let g = golden(name);
        assert_eq!(g["arch"].as_str(), Some(arch_of(name)), "{name}: arch");
        assert_eq!(
            g["n_vocab"].as_u64(),
            Some(tiny::N_VOCAB as u64),
            "{name}: n_vocab"
        );
        let got: Vec<Vec<u32>> = g["sequences"]
            .as_array()
            .expect("sequences")
            .iter()
            .map(|s| common::ids(&s["tokens"]))
            .collect();
        assert_eq!(
            got, seqs,
            "{name}: token sequences differ from tiny_sequences()"
        );
        // The header of the model as generated now: its vocabulary and architecture.
        let bytes = tiny_model(name);
        let h = inference::gguf::GgufHeader::parse(&bytes, bytes.len() as u64)
            .expect("header")
            .expect("complete header");
        assert_eq!(h.metadata.architecture().ok(), Some(arch_of(name)));
        assert_eq!(
            h.metadata
                .get_array("tokenizer.ggml.tokens")
                .map(|a| a.len()),
            Some(tiny::N_VOCAB)
        );
        assert_eq!(
            g["model_bytes"].as_u64(),
            Some(bytes.len() as u64),
            "{name}: model size differs from the one llama.cpp ran (regenerate the golden file)"
        );
        assert_eq!(
            g["model_fnv1a"].as_str(),
            Some(format!("{:016x}", fnv1a_bytes(&bytes)).as_str()),
            "{name}: model bytes differ from the ones llama.cpp ran (regenerate the golden file)"
        );
    }
}

/// Writes every tiny model to `$TINY_OUT/<model>.gguf` and the sequences to
/// `$TINY_OUT/sequences.txt` (one per line), for `scripts/make-arch-golden.sh`.
#[test]
#[ignore = "writes files: run by scripts/make-arch-golden.sh"]
fn write_tiny_models() {
    let dir = std::env::var("TINY_OUT").expect("TINY_OUT=directory");
    std::fs::create_dir_all(&dir).expect("TINY_OUT");
    for name in ARCHS.iter().chain(STRETCH_ARCHS) {
        // Stretch architectures may have no generator yet.
        let Ok(bytes) = std::panic::catch_unwind(|| tiny_model(name)) else {
            eprintln!("{name}: no generator, skipped");
            continue;
        };
        std::fs::write(format!("{dir}/{name}.gguf"), &bytes).expect("write model");
        std::fs::write(
            format!("{dir}/{name}.fnv1a"),
            format!("{} {:016x}\n", bytes.len(), fnv1a_bytes(&bytes)),
        )
        .expect("write hash");
    }
    let seqs: String = tiny_sequences()
        .iter()
        .map(|s| {
            let v: Vec<String> = s.iter().map(u32::to_string).collect();
            v.join(" ") + "\n"
        })
        .collect();
    std::fs::write(format!("{dir}/sequences.txt"), seqs).expect("write sequences");
}

/// `chord inspect` names each tiny model's architecture and calls it supported (what a user sees
/// before loading a file).
#[test]
fn chord_inspect_says_supported() {
    let dir = std::env::temp_dir().join(format!("chord-tiny-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for name in ARCHS {
        let path = dir.join(format!("{name}.gguf"));
        std::fs::write(&path, tiny_model(name)).expect("write tiny model");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chord"))
            .args(["inspect", "--model"])
            .arg(&path)
            .output()
            .expect("run chord");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: chord inspect failed: {text}");
        let want = format!("supported: {} — ", arch_of(name));
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "{name}: `chord inspect` does not say `{want}`:\n{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
