//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`) from real data:
//! `cargo run --release --example make_seeds` (in `fuzz/`; scripts/fuzz.sh runs it when the
//! seeds are missing). Needs `models/vocab/` (scripts/fetch-vocabs.sh); the models in
//! `models/` are used when present.
//!
//! - gguf_header: the first 16 KB of every GGUF file at hand, and two micro models (a complete
//!   llama file of ~10 KB with a byte-level BPE or an SPM vocabulary) that load to the end.
//! - tokenizer: llama.cpp's tokenizer test inputs (`models/vocab/*.inp`) for every tokenizer of
//!   the target, with and without special tokens, and token ids.
//! - chat_template: every chat template in those files, and the hostile ones of
//!   `inference/tests/hostile.rs`.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use inference::gguf::{GgufHeader, GgufWriter};

const HEAD: u64 = 16 << 10;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ggufs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in [root().join("models"), root().join("models/vocab")] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "gguf") {
                v.push(e.path());
            }
        }
    }
    v.sort();
    v
}

fn head(p: &Path, n: u64) -> Vec<u8> {
    let mut b = Vec::new();
    std::fs::File::open(p)
        .unwrap()
        .take(n)
        .read_to_end(&mut b)
        .unwrap();
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// GPT-2's byte → character table.
fn byte_chars() -> Vec<char> {
    let mut direct: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    direct.extend(0xa1..=0xac);
    direct.extend(0xae..=0xff);
    let mut n = 0;
    (0u32..256)
        .map(|b| {
            if direct.contains(&b) {
                char::from_u32(b).unwrap()
            } else {
                n += 1;
                char::from_u32(255 + n).unwrap()
            }
        })
        .collect()
}

/// A complete one-layer llama (n_embd 8, 2 heads, 1 KV head, F32 and F16 weights).
fn micro_model(spm: bool) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.str_kv("general.architecture", "llama")
        .str_kv("general.name", "micro");
    let n_vocab;
    if spm {
        let mut toks: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        let mut types = vec![2, 3, 3];
        for b in 0..=255u8 {
            toks.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        for t in ["\u{2581}", "\u{2581}a", "ab", "\u{2581}ab", "b", "a"] {
            toks.push(t.into());
            types.push(1);
        }
        let scores: Vec<f32> = (0..toks.len()).map(|i| -(i as f32)).collect();
        let refs: Vec<&str> = toks.iter().map(String::as_str).collect();
        w.str_kv("tokenizer.ggml.model", "llama")
            .str_array_kv("tokenizer.ggml.tokens", &refs)
            .f32_array_kv("tokenizer.ggml.scores", &scores)
            .i32_array_kv("tokenizer.ggml.token_type", &types)
            .u32_kv("tokenizer.ggml.bos_token_id", 1)
            .u32_kv("tokenizer.ggml.eos_token_id", 2);
        n_vocab = toks.len();
    } else {
        let mut toks: Vec<String> = vec!["<|endoftext|>".into(), "<|im_start|>".into()];
        let mut types = vec![3, 3];
        for c in byte_chars() {
            toks.push(c.to_string());
            types.push(1);
        }
        let merges = ["\u{120} t", "h e", "\u{120}t he"];
        for m in merges {
            toks.push(m.replace(' ', ""));
            types.push(1);
        }
        let refs: Vec<&str> = toks.iter().map(String::as_str).collect();
        w.str_kv("tokenizer.ggml.model", "gpt2")
            .str_kv("tokenizer.ggml.pre", "gpt-2")
            .str_array_kv("tokenizer.ggml.tokens", &refs)
            .i32_array_kv("tokenizer.ggml.token_type", &types)
            .str_array_kv("tokenizer.ggml.merges", &merges)
            .u32_kv("tokenizer.ggml.bos_token_id", 0)
            .u32_kv("tokenizer.ggml.eos_token_id", 0)
            .str_kv(
                "tokenizer.chat_template",
                "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}\n{% endfor %}\
                 {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
            );
        n_vocab = toks.len();
    }
    let (e, ff, kv) = (8u64, 16u64, 4u64);
    w.u32_kv("llama.context_length", 64)
        .u32_kv("llama.embedding_length", e as u32)
        .u32_kv("llama.block_count", 1)
        .u32_kv("llama.feed_forward_length", ff as u32)
        .u32_kv("llama.attention.head_count", 2)
        .u32_kv("llama.attention.head_count_kv", 1)
        .u32_kv("llama.rope.dimension_count", 4)
        .f32_kv("llama.rope.freq_base", 10000.0)
        .f32_kv("llama.attention.layer_norm_rms_epsilon", 1e-5);
    let vals = |n: u64| {
        (0..n)
            .map(|i| ((i % 7) as f32 - 3.0) / 8.0)
            .collect::<Vec<f32>>()
    };
    let f16 = |dims: &[u64]| {
        let n: u64 = dims.iter().product();
        (0..n)
            .flat_map(|i| {
                let v = ((i % 5) as u16) << 10; // small positive halves
                v.to_le_bytes()
            })
            .collect::<Vec<u8>>()
    };
    let nv = n_vocab as u64;
    w.f32_tensor("token_embd.weight", &[e, nv], &vals(e * nv))
        .f32_tensor("output_norm.weight", &[e], &vals(e))
        .f32_tensor("blk.0.attn_norm.weight", &[e], &vals(e))
        .f32_tensor("blk.0.attn_q.weight", &[e, e], &vals(e * e))
        .f32_tensor("blk.0.attn_k.weight", &[e, kv], &vals(e * kv))
        .f32_tensor("blk.0.attn_v.weight", &[e, kv], &vals(e * kv))
        .tensor("blk.0.attn_output.weight", &[e, e], 1, f16(&[e, e]))
        .f32_tensor("blk.0.ffn_norm.weight", &[e], &vals(e))
        .f32_tensor("blk.0.ffn_gate.weight", &[e, ff], &vals(e * ff))
        .f32_tensor("blk.0.ffn_up.weight", &[e, ff], &vals(e * ff))
        .tensor("blk.0.ffn_down.weight", &[ff, e], 1, f16(&[ff, e]));
    w.to_bytes()
}

/// The hostile templates of inference/tests/hostile.rs (the cases that once hung or aborted).
const HOSTILE: &[&str] = &[
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    r#"{{ "x" | indent(10**15) }}"#,
    r#"{{ "x\ny" | indent(width=10**12) }}"#,
    r#"{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"#,
    r#"{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"#,
    r#"{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ d("x", 60) }}"#,
    r#"{% set n = 1000000000 %}{% set x = "x" %}{{ x * n }}"#,
    r#"{{ ("x" * 10**8) ~ ("x" * 10**8) ~ ("x" * 10**8) ~ ("x" * 10**8) }}"#,
    r#"{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | join }}"#,
    r#"{% set n = 10000000000 %}{{ ([1] * n) | join }}"#,
    r#"{% set x = "x" %}{% set big = x * 1000000 %}{{ ([big] * 10000) | join(",") }}"#,
    r#"{% set x = "x" %}{% set big = x * 400000 %}{% set l = [big, big, big] %}{{ ",".join(l + l + l + l) }}"#,
    r#"{% set x = "x" %}{% for i in range(100000) %}{{ x * 10000 }}{% endfor %}"#,
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    r#"{% include "chat" %}"#,
    r#"{{ "%999999999999s" | format("x") }}"#,
    r#"{{ "{:>999999999999}".format("x") }}"#,
    r#"{% set x = "x" %}{{ (x * 100000) | replace("x", x * 100000) }}"#,
    r#"{% set x = "x" %}{{ (x * 100000).replace("", x * 100000) }}"#,
    r#"{{ [1, [2]] | tojson(indent=100000) }}"#,
    r#"{{ [1] | batch(10000000000) | list }}"#,
];

fn main() {
    let seeds = root().join("fuzz/seeds");
    let files = ggufs();
    assert!(
        files.iter().any(|p| p.to_string_lossy().contains("vocab")),
        "no models/vocab/*.gguf: run scripts/fetch-vocabs.sh"
    );

    // gguf_header
    let dir = seeds.join("gguf_header");
    for p in &files {
        let name = p.file_stem().unwrap().to_string_lossy();
        write(&dir, &format!("{name}.head"), &head(p, HEAD));
    }
    write(&dir, "micro-bpe.gguf", &micro_model(false));
    write(&dir, "micro-spm.gguf", &micro_model(true));

    // tokenizer: byte 0 = tokenizer (bits 0-2) | parse_special (8) | add_special (16) | raw ids (32)
    let dir = seeds.join("tokenizer");
    let mut n = 0;
    for p in &files {
        let inp = p.with_extension("gguf.inp");
        let Ok(text) = std::fs::read(&inp) else {
            continue;
        };
        // The test inputs are separated by a line of `__ggml_vocab_test__`.
        for (i, case) in String::from_utf8_lossy(&text)
            .split("\n__ggml_vocab_test__\n")
            .enumerate()
        {
            if case.is_empty() {
                continue;
            }
            let sel =
                (n % 5) as u8 | if n % 3 == 0 { 8 } else { 0 } | if n % 2 == 0 { 16 } else { 0 };
            let mut b = vec![sel];
            b.extend_from_slice(case.as_bytes());
            write(&dir, &format!("inp-{n:03}-{i}"), &b);
            n += 1;
        }
        if n > 200 {
            break;
        }
    }
    for (i, special) in [
        "<|endoftext|>hello<|im_start|>",
        "<s>[INST] hi [/INST]</s>",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    ]
    .iter()
    .enumerate()
    {
        for t in 0..5u8 {
            let mut b = vec![t | 8 | 16];
            b.extend_from_slice(special.as_bytes());
            write(&dir, &format!("special-{i}-{t}"), &b);
        }
    }
    let mut ids = vec![32u8];
    for id in [0u32, 1, 2, 3, 100, 1000, 32000, 128000, 151643, u32::MAX] {
        ids.extend_from_slice(&id.to_le_bytes());
    }
    write(&dir, "ids", &ids);

    // chat_template
    let dir = seeds.join("chat_template");
    let mut seen = BTreeSet::new();
    for p in &files {
        let size = std::fs::metadata(p).unwrap().len();
        let b = head(p, 64 << 20);
        let Ok(Some(h)) = GgufHeader::parse(&b, size) else {
            continue;
        };
        if let Some(t) = h.metadata.get_str("tokenizer.chat_template") {
            if seen.insert(t.to_owned()) {
                let name = p.file_stem().unwrap().to_string_lossy();
                write(&dir, &format!("{name}.jinja"), t.as_bytes());
                // The same template with a conversation of its own.
                let mut b = t.as_bytes().to_vec();
                for (role, content) in [(0u8, "Be brief."), (1, "Hi <b>"), (2, "Hello!"), (1, "")] {
                    b.push(0);
                    b.push(role);
                    b.extend_from_slice(content.as_bytes());
                }
                write(&dir, &format!("{name}.conv"), &b);
            }
        }
    }
    for (i, t) in HOSTILE.iter().enumerate() {
        write(&dir, &format!("hostile-{i:02}.jinja"), t.as_bytes());
    }
    eprintln!("seeds written to {}", seeds.display());
}
