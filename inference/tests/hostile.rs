//! Hostile files: each case is a GGUF built here (a tiny model, or the 4-layer SmolLM2 with
//! one thing changed) that once hung, aborted or printed nothing. Each must now fail with one
//! clear line and a non-zero exit, within 5 s, under a 1 GB address-space limit (`prlimit`), so
//! an attempted huge allocation fails instead of swapping — and no allocation failure happens
//! at all: that would abort, which the checks below see.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inference::chat::{ChatMessage, ChatTemplate};
use inference::gguf::{GgufHeader, GgufWriter, Value};
use inference::loader::ModelLoader;

/// Every case's limit (generous: they take milliseconds).
const TIME: Duration = Duration::from_secs(5);
const MEMORY: &str = "--as=1073741824";

fn tiny() -> Vec<u8> {
    common::tiny::tiny_model("llama")
}

/// A copy of `bytes` with the keys `drop` removed and `edit` applied to the writer.
fn variant(bytes: &[u8], drop: &[&str], edit: impl FnOnce(&mut GgufWriter)) -> Vec<u8> {
    let h = GgufHeader::parse_complete(bytes).unwrap();
    let mut w = GgufWriter::copy_of(&h, bytes, |k| !drop.contains(&k), |_| true);
    edit(&mut w);
    w.to_bytes()
}

/// The tiny model with `template` as its chat template.
fn with_template(template: &str) -> Vec<u8> {
    variant(&tiny(), &["tokenizer.chat_template"], |w| {
        w.str_kv("tokenizer.chat_template", template);
    })
}

/// Run `chord <args> --model FILE` on `bytes` under the memory limit, with `stdin`; check the
/// error contract (non-zero exit, one line `error: …`, no panic, no abort, within TIME) and
/// return the line.
fn chord_fails(case: &str, bytes: &[u8], args: &[&str], stdin: &str) -> String {
    let dir = std::env::temp_dir().join(format!("chord-hostile-{}-{case}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    let t = Instant::now();
    let mut child = Command::new("prlimit")
        .arg(MEMORY)
        .arg(env!("CARGO_BIN_EXE_chord"))
        .args(args)
        .args(["--model", path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs chord");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).ok();
    let out = child.wait_with_output().unwrap();
    let took = t.elapsed();
    std::fs::remove_dir_all(&dir).ok();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{case}: {took:.2?}: {}", err.trim_end());
    assert!(took < TIME, "{case}: took {took:?}");
    // 134 = abort (allocation failure), 101 = an unhooked panic, 2 = a hooked one.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{case}: {:?}: {err}",
        out.status
    );
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    assert_eq!(lines.len(), 1, "{case}: not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{case}: {err}");
    assert!(
        !err.contains("panick") && !err.contains("internal error"),
        "{case}: {err}"
    );
    lines[0].to_owned()
}

/// `chord generate --chat` (renders the template) must fail naming the template and `cause`;
/// `chord inspect` reports the same problem and still succeeds.
fn template_fails(case: &str, template: &str, cause: &str) {
    let bytes = with_template(template);
    let e = chord_fails(
        case,
        &bytes,
        &["generate", "--chat", "--prompt", "Hi", "--max-tokens", "1"],
        "",
    );
    assert!(
        e.contains("chat template:") && e.contains(cause),
        "{case}: {e}"
    );
    inspect_reports(case, &bytes, cause);
}

fn inspect_reports(case: &str, bytes: &[u8], cause: &str) {
    let path = std::env::temp_dir().join(format!("chord-inspect-{}-{case}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let t = Instant::now();
    let out = Command::new("prlimit")
        .arg(MEMORY)
        .arg(env!("CARGO_BIN_EXE_chord"))
        .args(["inspect", "--model", path.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(t.elapsed() < TIME, "{case}: inspect took {:?}", t.elapsed());
    assert!(out.status.success(), "{case}: inspect {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("chat template:"))
        .unwrap_or_else(|| panic!("{case}: no chat template line: {text}"));
    assert!(line.contains(cause), "{case}: {line}");
}

// ----------------------------------------------------------------------------------------------
// Chat templates
// ----------------------------------------------------------------------------------------------

#[test]
fn template_nested_loops_run_out_of_fuel() {
    template_fails(
        "loops",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "out of fuel",
    );
}

#[test]
fn template_indent_of_ten_to_the_fifteen() {
    template_fails("indent", r#"{{ "x" | indent(10**15) }}"#, "`indent`");
    template_fails(
        "indent-kw",
        r#"{{ "x\ny" | indent(width=10**12) }}"#,
        "`indent`",
    );
}

#[test]
fn template_string_doubling() {
    template_fails(
        "concat",
        r#"{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"#,
        "`~`",
    );
    template_fails(
        "plus",
        r#"{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"#,
        "`+`",
    );
    template_fails(
        "macro-doubling",
        r#"{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ d("x", 60) }}"#,
        "recursion",
    );
    template_fails(
        "repeat",
        r#"{% set n = 1000000000 %}{% set x = "x" %}{{ x * n }}"#,
        "`*`",
    );
    // Constants are folded while compiling, before any hook: refused up front.
    template_fails(
        "folded",
        r#"{{ ("x" * 10**8) ~ ("x" * 10**8) ~ ("x" * 10**8) ~ ("x" * 10**8) }}"#,
        "string literal",
    );
}

#[test]
fn template_list_doubling() {
    template_fails(
        "list",
        r#"{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | join }}"#,
        "items",
    );
    template_fails(
        "list-repeat",
        r#"{% set n = 10000000000 %}{{ ([1] * n) | join }}"#,
        "items",
    );
}

#[test]
fn template_join_of_ten_gigabytes() {
    // A list that repeats one 1 MB string: small in memory, 10 GB once joined.
    template_fails(
        "join",
        r#"{% set x = "x" %}{% set big = x * 1000000 %}{{ ([big] * 10000) | join(",") }}"#,
        "bytes",
    );
    template_fails(
        "join-method",
        r#"{% set x = "x" %}{% set big = x * 400000 %}{% set l = [big, big, big] %}{{ ",".join(l + l + l + l) }}"#,
        "bytes",
    );
}

#[test]
fn template_emitting_a_gigabyte() {
    template_fails(
        "emit",
        r#"{% set x = "x" %}{% for i in range(100000) %}{{ x * 10000 }}{% endfor %}"#,
        "bytes",
    );
    // Long literal text in a loop: no hook sees it, the fuel is lowered for it instead.
    let raw = "y".repeat(60_000);
    template_fails(
        "raw",
        &format!("{{% for i in range(100000) %}}{raw}{{% endfor %}}"),
        "out of fuel",
    );
}

#[test]
fn template_recursion() {
    template_fails(
        "macro-recursion",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "recursion",
    );
    template_fails("include", r#"{% include "chat" %}"#, "not supported");
}

#[test]
fn template_growing_filters_and_methods() {
    template_fails(
        "format",
        r#"{{ "%999999999999s" | format("x") }}"#,
        "format",
    );
    template_fails(
        "format-method",
        r#"{{ "{:>999999999999}".format("x") }}"#,
        "format",
    );
    template_fails(
        "replace",
        r#"{% set x = "x" %}{{ (x * 100000) | replace("x", x * 100000) }}"#,
        "`replace`",
    );
    template_fails(
        "replace-method",
        r#"{% set x = "x" %}{{ (x * 100000).replace("", x * 100000) }}"#,
        "`replace`",
    );
    template_fails(
        "tojson",
        r#"{{ [1, [2]] | tojson(indent=100000) }}"#,
        "tojson",
    );
    template_fails("batch", r#"{{ [1] | batch(10000000000) | list }}"#, "items");
    // minijinja panicked on a non-ASCII format key (found by fuzz/chat_template).
    template_fails("format-key", r#"{{ "%(é)s" | format(x=1) }}"#, "non-ASCII");
    template_fails(
        "format-method-key",
        r#"{{ "{0[é]}".format([1]) }}"#,
        "non-ASCII",
    );
}

/// The real templates at hand (the models' and llama.cpp's vocabulary files', Gemma 4's tool
/// calling one among them) render a long conversation within the budget.
#[test]
fn real_templates_render_long_conversations() {
    let dirs = [common::models_dir(), common::models_dir().join("vocab")];
    let mut seen = 0;
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "gguf") {
                continue;
            }
            let bytes = header_prefix(&p);
            let Ok(Some(h)) = GgufHeader::parse(&bytes, std::fs::metadata(&p).unwrap().len())
            else {
                continue;
            };
            if h.metadata.get_str("tokenizer.chat_template").is_none() {
                continue;
            }
            let t = ChatTemplate::from_metadata(&h.metadata).unwrap();
            let mut msgs = vec![ChatMessage::system("You are a helpful assistant.")];
            for i in 0..200 {
                msgs.push(ChatMessage::user(format!(
                    "Question {i}: what is {i} + {i}?"
                )));
                msgs.push(ChatMessage::assistant(format!("It is {}.", 2 * i)));
            }
            msgs.push(ChatMessage::user("Thanks!"));
            let start = Instant::now();
            let out = t
                .render(&msgs, true)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            eprintln!(
                "{}: {} bytes for {} messages in {:.1?}",
                p.display(),
                out.len(),
                msgs.len(),
                start.elapsed()
            );
            assert!(out.contains("Question 199"), "{}", p.display());
            seen += 1;
        }
    }
    eprintln!("{seen} real templates");
}

/// The first bytes of a file, enough for its header (vocabulary files are small).
fn header_prefix(p: &std::path::Path) -> Vec<u8> {
    use std::io::Read;
    let mut buf = Vec::new();
    let f = std::fs::File::open(p).unwrap();
    f.take(64 << 20).read_to_end(&mut buf).unwrap();
    buf
}

// ----------------------------------------------------------------------------------------------
// Model files
// ----------------------------------------------------------------------------------------------

fn generate_fails(case: &str, bytes: &[u8]) -> String {
    chord_fails(
        case,
        bytes,
        &["generate", "--prompt", "Hi there", "--max-tokens", "4"],
        "",
    )
}

#[test]
fn block_count_of_2_pow_24_minus_1() {
    // The 44 MB 4-layer model, claiming 16,777,215 layers.
    let b = std::fs::read(common::model_path("smollm2-4layer-mixed")).unwrap();
    let bytes = variant(&b, &["llama.block_count"], |w| {
        w.u32_kv("llama.block_count", (1 << 24) - 1);
    });
    let e = generate_fails("block-count", &bytes);
    assert!(e.contains("16777215 layers"), "{e}");
}

#[test]
fn huge_array_counts() {
    // A u8 array and a string array claiming more elements than the file holds.
    for (ty, count) in [(0u32, 1u64 << 40), (8, 1 << 33)] {
        let mut v = ty.to_le_bytes().to_vec();
        v.extend_from_slice(&count.to_le_bytes());
        let bytes = variant(&tiny(), &[], |w| {
            w.raw_kv("hostile.array", 9, &v);
        });
        let e = generate_fails(&format!("array-{ty}"), &bytes);
        assert!(e.contains(&count.to_string()), "{e}");
    }
}

#[test]
fn nan_weights() {
    let b = tiny();
    let h = GgufHeader::parse_complete(&b).unwrap();
    let norm = h.tensor("output_norm.weight").unwrap();
    let n = norm.n_elements() as usize;
    let mut w = GgufWriter::copy_of(&h, &b, |_| true, |t| t.name != "output_norm.weight");
    w.f32_tensor("output_norm.weight", &[n as u64], &vec![f32::NAN; n]);
    let bytes = w.to_bytes();
    for (case, args) in [
        (
            "nan-generate",
            vec!["generate", "--prompt", "Hi", "--max-tokens", "4"],
        ),
        (
            "nan-sample",
            vec![
                "generate",
                "--prompt",
                "Hi",
                "--max-tokens",
                "4",
                "--temperature",
                "0.8",
            ],
        ),
        (
            "nan-logits",
            vec!["logits", "--prompt", "Hi there", "--all-positions"],
        ),
        ("nan-chat", vec!["chat", "--max-tokens", "4"]),
    ] {
        let e = chord_fails(case, &bytes, &args, "Hello\n");
        assert!(e.contains("NaN logits"), "{case}: {e}");
    }
}

#[test]
fn invalid_hyper_parameters() {
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "freq-base-0",
            "llama.rope.freq_base",
            Value::F32(0.0),
            "must be a positive number",
        ),
        (
            "freq-base-neg",
            "llama.rope.freq_base",
            Value::F32(-1e4),
            "must be a positive number",
        ),
        (
            "freq-base-inf",
            "llama.rope.freq_base",
            Value::F32(f32::INFINITY),
            "must be finite",
        ),
        (
            "eps-nan",
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(f32::NAN),
            "finite number",
        ),
        (
            "eps-string",
            "llama.attention.layer_norm_rms_epsilon",
            Value::String("1e-5".into()),
            "must be a number (found a string)",
        ),
        (
            "scaling-neg",
            "llama.rope.scaling.factor",
            Value::F32(-2.0),
            "must be a positive number",
        ),
        (
            "block-count-neg",
            "llama.block_count",
            Value::I32(-1),
            "`llama.block_count` must be a non-negative integer (found -1)",
        ),
        (
            "block-count-string",
            "llama.block_count",
            Value::String("4".into()),
            "`llama.block_count` must be a non-negative integer (found a string)",
        ),
        (
            "arch-number",
            "general.architecture",
            Value::U32(7),
            "`general.architecture` must be a string (found 7)",
        ),
    ];
    for (case, key, v, want) in cases {
        let bytes = variant(&tiny(), &[key], |w| {
            w.value_kv(key, &v);
        });
        let e = generate_fails(case, &bytes);
        assert!(e.contains(want) && e.contains(key), "{case}: {e}");
    }
}

// ----------------------------------------------------------------------------------------------
// Streaming a hostile header (library level)
// ----------------------------------------------------------------------------------------------

/// The start of a GGUF file whose one key holds a string of `len` bytes (the rest of the
/// string is pushed as zeros).
fn string_header(len: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // keys
    let key = b"general.name";
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b
}

#[test]
fn a_400_mb_string_in_the_header_fails_at_once() {
    let len = 400u64 << 20;
    let head = string_header(len);
    let size = head.len() as u64 + len;
    let mut l = ModelLoader::new(size);
    let t = Instant::now();
    let chunk = vec![0u8; 64 << 10];
    let mut r = l.push(&head);
    let mut pushed = head.len() as u64;
    while r.is_ok() && pushed < size {
        let n = chunk.len().min((size - pushed) as usize);
        r = l.push(&chunk[..n]);
        pushed += n as u64;
    }
    let e = r.expect_err("must fail").to_string();
    eprintln!(
        "400 MB string: {e} after {pushed} bytes, {:.2?}",
        t.elapsed()
    );
    assert!(e.contains("256 MB"), "{e}");
    assert!(t.elapsed() < TIME, "{:?}", t.elapsed());
}

#[test]
fn a_header_of_many_strings_streamed_in_small_chunks_is_linear() {
    // 2 M strings (~25 MB) pushed 4 KB at a time: re-parsing from byte 0 on every chunk took
    // minutes; the header then fails (no architecture) as a normal bad file.
    let n = 2u64 << 20;
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    let key = b"tokenizer.ggml.tokens";
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&n.to_le_bytes());
    for i in 0..n {
        b.extend_from_slice(&4u64.to_le_bytes());
        b.extend_from_slice(&(i as u32).to_le_bytes());
    }
    let t = Instant::now();
    let mut l = ModelLoader::new(b.len() as u64);
    let mut r = Ok(());
    for c in b.chunks(4 << 10) {
        r = l.push(c);
        if r.is_err() {
            break;
        }
    }
    let e = r.expect_err("no architecture").to_string();
    eprintln!(
        "{} MB header in 4 KB chunks: {e} ({:.2?})",
        b.len() >> 20,
        t.elapsed()
    );
    assert!(e.contains("general.architecture"), "{e}");
    assert!(t.elapsed() < TIME, "{:?}", t.elapsed());
}

// ----------------------------------------------------------------------------------------------
// Tokenizer
// ----------------------------------------------------------------------------------------------

#[test]
fn a_one_megabyte_word_tokenizes_in_bounded_time() {
    let model = inference::model::Model::from_bytes(&tiny()).unwrap();
    for text in ["a".repeat(1 << 20), "ab".repeat(1 << 19)] {
        let t = Instant::now();
        let ids = model.tokenizer.encode(&text, false);
        eprintln!("1 MB word: {} tokens in {:.2?}", ids.len(), t.elapsed());
        assert!(!ids.is_empty());
        assert_eq!(model.tokenizer.decode(&ids).len(), text.len());
        assert!(t.elapsed() < TIME, "{:?}", t.elapsed());
    }
}

// ----------------------------------------------------------------------------------------------
// The malformed-file corpus: truncations, huge counts, bad offsets (the fuzz targets in
// fuzz/ search the same space at random; these are the systematic cases, run in CI)
// ----------------------------------------------------------------------------------------------

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

/// `bytes` with `v` written at `at`.
fn patched(bytes: &[u8], at: usize, v: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + v.len()].copy_from_slice(v);
    b
}

/// The tiny model cut at many offsets: inside the fixed header, every part of the metadata and
/// the tensor table, at the data section, and inside the tensor data.
fn truncations() -> Vec<(String, Vec<u8>)> {
    let b = tiny();
    let h = GgufHeader::parse_complete(&b).unwrap();
    let data = h.data_offset as usize;
    let mut cuts = vec![0, 1, 4, 7, 8, 16, 23, 24, 30];
    cuts.extend((1..=24).map(|i| 30 + (data - 30) * i / 25));
    cuts.extend([data - 1, data, data + 1]);
    cuts.extend((1..=8).map(|i| data + (b.len() - data) * i / 9));
    cuts.push(b.len() - 1);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.into_iter()
        .map(|n| (format!("cut-{n}"), b[..n].to_vec()))
        .collect()
}

/// Counts, lengths and shapes far beyond what the file holds, and tensor offsets that are
/// misaligned, wrap around u64, or make two tensors overlap.
fn bad_counts_and_offsets() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let b = tiny();
    let q = tensor_info_at(&b, "blk.0.attn_q.weight");
    let k = tensor_info_at(&b, "blk.0.attn_k.weight");
    // attn_q and attn_k are matrices: n_dims (4 bytes), 2 dims, type (4), offset (8).
    assert_eq!(u32::from_le_bytes(b[q..q + 4].try_into().unwrap()), 2);
    let q_off = q + 4 + 16 + 4;
    let k_off = k + 4 + 16 + 4;
    let offset = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let huge = (1u64 << 40).to_le_bytes();
    vec![
        ("tensor-count", patched(&b, 8, &huge), "tensor count"),
        (
            "kv-count",
            patched(&b, 16, &huge),
            "metadata key/value count",
        ),
        (
            "key-length",
            patched(&b, 24, &(1u64 << 62).to_le_bytes()),
            "key length",
        ),
        (
            "n-dims",
            patched(&b, q, &u32::MAX.to_le_bytes()),
            "dimensions",
        ),
        (
            "shape-overflow",
            patched(&b, q + 4, &[huge, huge].concat()),
            "overflows",
        ),
        (
            "tensor-too-large",
            patched(
                &b,
                q + 4,
                &[(1u64 << 33).to_le_bytes(), 64u64.to_le_bytes()].concat(),
            ),
            "attn_q",
        ),
        (
            "offset-misaligned",
            patched(&b, q_off, &(offset(q_off) + 4).to_le_bytes()),
            "alignment",
        ),
        (
            "offset-wraps",
            patched(&b, q_off, &(u64::MAX - 31).to_le_bytes()),
            "past the end",
        ),
        (
            "offset-overlap",
            patched(&b, k_off, &offset(q_off).to_le_bytes()),
            "overlap",
        ),
        (
            "alignment-0",
            variant(&b, &[], |w| {
                w.u32_kv("general.alignment", 0);
            }),
            "general.alignment",
        ),
        (
            "alignment-3",
            variant(&b, &[], |w| {
                w.u32_kv("general.alignment", 3);
            }),
            "general.alignment",
        ),
        (
            "alignment-2-pow-40",
            variant(&b, &[], |w| {
                w.value_kv("general.alignment", &Value::U64(1 << 40));
            }),
            "general.alignment",
        ),
    ]
}

/// Every truncation fails in the loader, pushed in chunks as the browser pushes them.
#[test]
fn truncations_fail_in_the_loader() {
    for (case, bytes) in truncations() {
        let mut l = ModelLoader::new(bytes.len() as u64);
        let r = bytes
            .chunks(4 << 10)
            .try_for_each(|c| l.push(c))
            .and_then(|()| l.finish().map(drop));
        let e = r.expect_err(&case).to_string();
        assert!(!e.contains('\n'), "{case}: {e}");
    }
}

#[test]
fn truncations_through_the_cli() {
    for (case, bytes) in truncations() {
        let e = generate_fails(&case, &bytes);
        assert!(
            e.contains("truncated")
                || e.contains("past the end")
                || e.contains("bytes left in the file")
                || e.contains("not a GGUF file")
                || e.contains("before tensor"),
            "{case}: {e}"
        );
    }
}

#[test]
fn huge_counts_and_bad_offsets_through_the_cli() {
    for (case, bytes, want) in bad_counts_and_offsets() {
        let e = generate_fails(case, &bytes);
        assert!(e.contains(want), "{case}: {e}");
    }
}
