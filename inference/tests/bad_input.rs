//! Bad input gives one clear error line and a non-zero exit, never a panic: each case is a real
//! file derived from the 4-layer model and run through the `chord` binary.

mod common;

use std::process::Command;

use inference::gguf::{GgufHeader, GgufWriter};

fn base() -> Vec<u8> {
    std::fs::read(common::model_path("smollm2-4layer-mixed")).unwrap()
}

/// Run `chord generate` on `bytes`; return stderr after checking the error contract.
fn chord_fails(case: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("chord-bad-{}-{case}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chord"))
        .args([
            "generate",
            "--model",
            path.to_str().unwrap(),
            "--prompt",
            "Hi",
            "--max-tokens",
            "2",
        ])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{case}: exit status {:?}",
        out.status
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{case}: not one line: {err}"
    );
    assert!(err.starts_with("error: "), "{case}: {err}");
    assert!(
        !err.contains("panick") && !err.contains("internal error"),
        "{case}: {err}"
    );
    err
}

/// Byte position of the tensor info of `name` (just after its name string).
fn tensor_info_at(bytes: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let i = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("tensor info");
    i + needle.len()
}

#[test]
fn truncated_file() {
    let b = base();
    let e = chord_fails("truncated", &b[..b.len() / 2]);
    assert!(e.contains("past the end of the file"), "{e}");
    let e = chord_fails("truncated-header", &b[..1000]);
    assert!(
        e.contains("bytes left in the file") || e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn wrong_magic() {
    let mut b = base();
    b[0..4].copy_from_slice(b"GGML");
    let e = chord_fails("magic", &b);
    assert!(e.contains("not a GGUF file"), "{e}");
    let e = chord_fails("text", b"<!DOCTYPE html><html>not a model</html>");
    assert!(e.contains("not a GGUF file"), "{e}");
}

#[test]
fn tensor_offset_past_the_end() {
    let mut b = base();
    let at = tensor_info_at(&b, "blk.0.attn_q.weight");
    let n_dims = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let off = at + 4 + 8 * n_dims + 4;
    b[off..off + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = chord_fails("offset", &b);
    assert!(
        e.contains("blk.0.attn_q.weight") && e.contains("past the end"),
        "{e}"
    );
}

#[test]
fn array_count_of_2_pow_60() {
    let mut b = base();
    let key = b"tokenizer.ggml.tokens";
    let i = b.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    // value type (9 = array), element type (8 = string), then the count.
    assert_eq!(u32::from_le_bytes(b[i..i + 4].try_into().unwrap()), 9);
    b[i + 8..i + 16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let e = chord_fails("count", &b);
    assert!(e.contains("1152921504606846976"), "{e}");
}

#[test]
fn unknown_tensor_type() {
    let mut b = base();
    let at = tensor_info_at(&b, "blk.0.ffn_up.weight");
    let n_dims = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    b[ty..ty + 4].copy_from_slice(&16u32.to_le_bytes()); // IQ2_XXS
    let e = chord_fails("type-iq2", &b);
    assert!(
        e.contains("IQ2_XXS") && e.contains("blk.0.ffn_up.weight"),
        "{e}"
    );
    b[ty..ty + 4].copy_from_slice(&77u32.to_le_bytes()); // no such type
    let e = chord_fails("type-77", &b);
    assert!(e.contains("77"), "{e}");
}

#[test]
fn missing_required_key() {
    let b = base();
    let h = GgufHeader::parse_complete(&b).unwrap();
    let w = GgufWriter::copy_of(&h, &b, |k| k != "llama.block_count", |_| true);
    let e = chord_fails("missing-key", &w.to_bytes());
    assert!(e.contains("llama.block_count"), "{e}");
    let w = GgufWriter::copy_of(&h, &b, |k| k != "general.architecture", |_| true);
    let e = chord_fails("missing-arch", &w.to_bytes());
    assert!(e.contains("general.architecture"), "{e}");
}

#[test]
fn missing_tensor_and_wrong_shape() {
    let b = base();
    let h = GgufHeader::parse_complete(&b).unwrap();
    let w = GgufWriter::copy_of(&h, &b, |_| true, |t| t.name != "blk.2.ffn_down.weight");
    let e = chord_fails("missing-tensor", &w.to_bytes());
    assert!(e.contains("blk.2.ffn_down.weight"), "{e}");

    // Metadata says a different FFN width than the tensors have.
    let mut w = GgufWriter::copy_of(&h, &b, |k| k != "llama.feed_forward_length", |_| true);
    w.u32_kv("llama.feed_forward_length", 1024);
    let e = chord_fails("shape", &w.to_bytes());
    assert!(e.contains("shape") && e.contains("ffn_gate"), "{e}");
}

#[test]
fn unsupported_architecture() {
    let b = base();
    let h = GgufHeader::parse_complete(&b).unwrap();
    let mut w = GgufWriter::copy_of(&h, &b, |k| k != "general.architecture", |_| true);
    w.str_kv("general.architecture", "mamba");
    let e = chord_fails("arch", &w.to_bytes());
    assert!(e.contains("mamba"), "{e}");
}

#[test]
fn missing_file_and_bad_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_chord"))
        .args([
            "generate",
            "--model",
            "/nonexistent/x.gguf",
            "--prompt",
            "Hi",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("/nonexistent/x.gguf"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chord"))
        .args(["generate", "--max-tokens", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// A cut download never becomes a model: the streaming loader refuses to finish.
#[test]
fn cut_stream_is_not_a_model() {
    let b = base();
    let mut l = inference::loader::ModelLoader::new(b.len() as u64);
    for c in b[..b.len() - 100].chunks(1 << 20) {
        l.push(c).unwrap();
    }
    let e = l.finish().err().expect("must fail").to_string();
    assert!(e.contains("before tensor"), "{e}");
}
