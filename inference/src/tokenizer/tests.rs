//! Tokenizer unit tests on tiny hand-built vocabularies.

use super::*;
use crate::gguf::{GgufHeader, GgufWriter};

fn metadata(w: &GgufWriter) -> Metadata {
    GgufHeader::parse_complete(&w.to_bytes()).unwrap().metadata
}

/// A SentencePiece vocabulary: control tokens, byte tokens for 0x00..=0xFF, a few merges.
fn spm_writer(extra: impl FnOnce(&mut GgufWriter)) -> GgufWriter {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut scores = vec![0.0f32; 3];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    for (t, s) in [
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("he", -3.0),
        ("ll", -3.0),
        ("llo", -4.0),
        ("hello", -5.0),
        ("▁hello", -6.0),
        ("▁h", -7.0),
        ("<|turn|>", 0.0),
    ] {
        tokens.push(t.into());
        scores.push(s);
        types.push(if t == "<|turn|>" { 3 } else { 1 });
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut w = GgufWriter::new();
    w.str_kv("tokenizer.ggml.model", "llama")
        .str_array_kv("tokenizer.ggml.tokens", &refs)
        .f32_array_kv("tokenizer.ggml.scores", &scores)
        .i32_array_kv("tokenizer.ggml.token_type", &types)
        .u32_kv("tokenizer.ggml.bos_token_id", 1)
        .u32_kv("tokenizer.ggml.eos_token_id", 2)
        .u32_kv("tokenizer.ggml.unknown_token_id", 0);
    extra(&mut w);
    w
}

fn id(t: &Tokenizer, s: &str) -> u32 {
    t.token_id(s).unwrap()
}

#[test]
fn spm_merges_by_score_with_space_prefix() {
    let t = Tokenizer::from_metadata(&metadata(&spm_writer(|_| {}))).unwrap();
    assert_eq!(t.kind(), TokenizerKind::Spm);
    assert!(t.add_bos() && t.add_space_prefix());
    assert_eq!(t.encode("hello", true), vec![1, id(&t, "▁hello")]);
    assert_eq!(t.encode("hello", false), vec![id(&t, "▁hello")]);
    // "hello hello": the second word gets its ▁ from the space itself.
    assert_eq!(
        t.encode("hello hello", false),
        vec![id(&t, "▁hello"), id(&t, "▁hello")]
    );
    assert_eq!(t.decode(&t.encode("hello hello", true)), " hello hello");
}

#[test]
fn spm_byte_fallback_and_special_tokens() {
    let t = Tokenizer::from_metadata(&metadata(&spm_writer(|_| {}))).unwrap();
    // 'é' is not in the vocabulary: two byte tokens.
    let ids = t.encode("hé", false);
    assert_eq!(ids, vec![id(&t, "▁h"), id(&t, "<0xC3>"), id(&t, "<0xA9>")]);
    let mut d = t.detokenizer();
    let parts: Vec<String> = ids.iter().map(|&i| d.push(i)).collect();
    assert_eq!(
        parts,
        vec![" h".to_string(), String::new(), "é".to_string()]
    );
    assert_eq!(d.flush(), "");
    // Special token written in the text: one token, and the next text gets a space prefix again.
    let ids = t.encode("hello<|turn|>hello", true);
    let turn = id(&t, "<|turn|>");
    assert_eq!(ids, vec![1, id(&t, "▁hello"), turn, id(&t, "▁hello")]);
    assert!(t.is_control(turn));
    // Control tokens decode to nothing but have a piece.
    assert_eq!(t.decode(&[1, turn, 2]), "");
    assert_eq!(t.token_piece_bytes(turn), b"<|turn|>".to_vec());
    assert_eq!(t.token_piece_bytes(id(&t, "<0xC3>")), vec![0xC3]);
    assert!(t.is_eog(2) && !t.is_eog(1));
    assert_eq!(t.token_piece_bytes(999_999), Vec::<u8>::new());
}

#[test]
fn spm_keys_override_defaults() {
    let w = spm_writer(|w| {
        w.bool_kv("tokenizer.ggml.add_space_prefix", false)
            .bool_kv("tokenizer.ggml.add_bos_token", false)
            .bool_kv("tokenizer.ggml.add_eos_token", true);
    });
    let t = Tokenizer::from_metadata(&metadata(&w)).unwrap();
    assert_eq!(t.encode("hello", true), vec![id(&t, "hello"), 2]);
}

#[test]
fn streaming_invalid_utf8_matches_lossy_decode() {
    let t = Tokenizer::from_metadata(&metadata(&spm_writer(|_| {}))).unwrap();
    let b = |x: u8| id(&t, &format!("<0x{x:02X}>"));
    // Lone continuation byte, truncated 3-byte char, then a complete 4-byte char, then a dangling lead.
    let ids = [
        b(0x80),
        b(0xE2),
        b(0x82),
        id(&t, "h"),
        b(0xF0),
        b(0x9F),
        b(0x8C),
        b(0x8D),
        b(0xE2),
    ];
    let mut d = t.detokenizer();
    let mut s = String::new();
    for &i in &ids {
        s.push_str(&d.push(i));
    }
    s.push_str(&d.flush());
    assert_eq!(s, t.decode(&ids));
    assert_eq!(s, "\u{FFFD}\u{FFFD}h🌍\u{FFFD}");
}

/// A byte-level BPE vocabulary: all 256 byte characters plus a few merges.
fn bpe_writer(pre: &str) -> GgufWriter {
    let enc = bpe::Bpe::new(pre_table::gpt2(), &[]).unwrap();
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let mut seen = std::collections::HashSet::new();
    for b in 0..=255u8 {
        let mut v = Vec::new();
        let s: String = {
            // Round-trip through the decoder to find each byte's character.
            let c = (0..0x200u32)
                .filter_map(char::from_u32)
                .find(|c| {
                    v.clear();
                    enc.decode_token_text(&c.to_string(), &mut v);
                    v == [b]
                })
                .unwrap();
            c.to_string()
        };
        assert!(seen.insert(s.clone()));
        tokens.push(s);
    }
    for t in ["Ġh", "el", "lo", "ello", "Ġhello", "12"] {
        tokens.push(t.into());
    }
    let merges = ["Ġ h", "e l", "l o", "el lo", "Ġh ello", "1 2"];
    let mut types = vec![3, 3, 3];
    types.resize(tokens.len(), 1);
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut w = GgufWriter::new();
    w.str_kv("tokenizer.ggml.model", "gpt2")
        .str_kv("tokenizer.ggml.pre", pre)
        .str_array_kv("tokenizer.ggml.tokens", &refs)
        .i32_array_kv("tokenizer.ggml.token_type", &types)
        .str_array_kv("tokenizer.ggml.merges", &merges)
        .u32_kv("tokenizer.ggml.bos_token_id", 1)
        .u32_kv("tokenizer.ggml.eos_token_id", 2);
    w
}

#[test]
fn bpe_merges_by_rank_and_pretokenizer() {
    let t = Tokenizer::from_metadata(&metadata(&bpe_writer("smollm"))).unwrap();
    assert_eq!(t.kind(), TokenizerKind::Bpe);
    assert!(!t.add_bos());
    let ids = t.encode("hello hello", true);
    assert_eq!(t.token_text(ids[0]), Some("h"));
    assert_eq!(t.token_text(ids[1]), Some("ello"));
    assert_eq!(t.token_text(ids[2]), Some("Ġhello"));
    assert_eq!(t.decode(&ids), "hello hello");
    // smollm splits digits one by one before the gpt2 regex, so "12" never merges.
    let ids = t.encode("12", false);
    assert_eq!(ids.len(), 2);
    let t2 = Tokenizer::from_metadata(&metadata(&bpe_writer("gpt-2"))).unwrap();
    assert_eq!(t2.encode("12", false), vec![id(&t2, "12")]);
    // Special tokens in text, EOG detection by text.
    let ids = t.encode("<|im_start|>hello<|im_end|>", false);
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    assert!(t.is_eog(0) && t.is_eog(2) && !t.is_eog(1));
    assert_eq!(t.token_piece_bytes(id(&t, "Ġhello")), b" hello".to_vec());
    // llama3 pre-tokenizer turns add_bos on by default.
    let t3 = Tokenizer::from_metadata(&metadata(&bpe_writer("llama-bpe"))).unwrap();
    assert!(t3.add_bos());
    assert_eq!(t3.encode("hello", true)[0], 1);
    // Unknown pre-tokenizers fall back to gpt2's regex.
    assert!(Tokenizer::from_metadata(&metadata(&bpe_writer("something-new"))).is_ok());
}

#[test]
fn special_partition_prefers_longest_token() {
    // Add two user-defined tokens, one a prefix of the other.
    let mut md = metadata(&spm_writer(|_| {}));
    if let Some(Value::Array(Array::String(toks))) = md.0.get_mut("tokenizer.ggml.tokens") {
        toks.push("<a>".into());
        toks.push("<a><b>".into());
    }
    if let Some(Value::Array(Array::F32(s))) = md.0.get_mut("tokenizer.ggml.scores") {
        s.extend([0.0, 0.0]);
    }
    if let Some(Value::Array(Array::I32(ty))) = md.0.get_mut("tokenizer.ggml.token_type") {
        ty.extend([4, 4]);
    }
    let t = Tokenizer::from_metadata(&md).unwrap();
    let (a, ab) = (id(&t, "<a>"), id(&t, "<a><b>"));
    assert_eq!(t.encode("<a><b><a>", false), vec![ab, a]);
    assert_eq!(t.decode(&[ab, a]), "<a><b><a>");
}

fn expect_err(md: &Metadata, needle: &str) {
    match Tokenizer::from_metadata(md) {
        Ok(_) => panic!("expected an error mentioning {needle:?}"),
        Err(e) => assert!(
            e.to_string().contains(needle),
            "{e} does not mention {needle:?}"
        ),
    }
}

#[test]
fn bad_metadata_is_an_error_not_a_panic() {
    expect_err(&Metadata::default(), "tokenizer.ggml.model");
    let mut md = metadata(&spm_writer(|_| {}));
    md.0.insert("tokenizer.ggml.model".into(), Value::String("t5x".into()));
    expect_err(&md, "t5x");

    let mut md = metadata(&spm_writer(|_| {}));
    md.0.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(1 << 30));
    expect_err(&md, "eos_token_id");

    let mut md = metadata(&spm_writer(|_| {}));
    md.0.insert(
        "tokenizer.ggml.bos_token_id".into(),
        Value::String("1".into()),
    );
    expect_err(&md, "bos_token_id");

    let mut md = metadata(&spm_writer(|_| {}));
    md.0.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(Array::F32(vec![1.0])),
    );
    expect_err(&md, "tokenizer.ggml.tokens");

    let mut md = metadata(&spm_writer(|_| {}));
    md.0.insert(
        "tokenizer.ggml.scores".into(),
        Value::Array(Array::F32(vec![1.0])),
    );
    expect_err(&md, "scores");

    let mut md = metadata(&spm_writer(|_| {}));
    md.0.insert("tokenizer.ggml.add_bos_token".into(), Value::U32(1));
    expect_err(&md, "add_bos_token");

    let mut md = metadata(&bpe_writer("gpt2"));
    md.0.remove("tokenizer.ggml.merges");
    expect_err(&md, "merges");
}

// --- pre-tokenizers -----------------------------------------------------------------------------
//
// Expected pieces: llama.cpp's regex list for each name (read from its `src/llama-vocab.cpp`,
// `llm_tokenizer_bpe`) applied one regex after the other with Python's `regex` module (same
// Unicode classes and lookaheads), keeping the text between matches as pieces; `\d` as `[0-9]`
// and `\p{Lu}`/`\p{Ll}`/... as `\p{L}` (llama.cpp's `std::regex` on collapsed text);
// llama.cpp's hand-written Kimi-K2 splitter written as one regex with its Han ranges; its
// AFMoE/Tiny-Aya digit splitter emulated in Python line by line; for regexes without `\p{..}`,
// non-ASCII whitespace replaced by U+000B first, as llama.cpp does for `std::wregex`. The text avoids code points
// newer than Python's Unicode 14 tables and U+001C..U+001F (whitespace to Python only).

/// The test text of [`pre_tokenizer_splits_match_llama_cpp`].
const SPLIT_TEXT: &str = "Hello World! It's WE'LL don't iPhone HelloWorld ÉCOLE naïve Straße 1234567 3.14 ١٢٣ x+=42; fn main() {}\n\tif a==b:  return 'ok'\r\n😀👍🏽 你好世界 こんにちは 안녕하세요 Привет हिन्दी العربية\u{A0}€5\u{3000}end   ";

/// (name, pieces of `SPLIT_TEXT`).
const SPLITS: &[(&str, &[&str])] = &[
    (
        "gpt-4o",
        &[
            "Hello", " World", "!", " It's", " WE'LL", " don't", " i", "Phone", " Hello", "World",
            " É", "COLE", " naïve", " Straße", " ", "123", "456", "7", " ", "3", ".", "14", " ",
            "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a", "==", "b",
            ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요",
            " Привет", " ह", "िन", "्द", "ी", " العربية", "\u{A0}", "€", "5", "\u{3000}end",
            "   ",
        ],
    ),
    (
        "tekken",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " i", "Phone",
            " Hello", "World", " É", "COLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5",
            "6", "7", " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";",
            " fn", " main", "()", " {}\n", "\tif", " a", "==", "b", ":", " ", " return", " '",
            "ok", "'\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "िन", "्द", "ी",
            " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "smollm",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'", "LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7",
            " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn",
            " main", "()", " {}", "\n", "\t", "if", " a", "==", "b", ":", " ", " return", " '",
            "ok", "'", "\r", "\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "ि", "न",
            "्", "द", "ी", " العربية", "\u{A0}", "€", "5", "\u{3000}", "end", "   ",
        ],
    ),
    (
        "deepseek-v3",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "123", "456", "7", " ", "3", ".",
            "14", " ", "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a",
            "==", "b", ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " ", "你好世界", " ", "こんにちは",
            " 안녕하세요", " Привет", " हिन्दी", " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "chameleon",
        &[
            "Hello", " World", "!", " It", "'", "s", " WE", "'", "LL", " don", "'", "t",
            " iPhone", " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5",
            "6", "7", " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+", "=", "4", "2", ";",
            " fn", " main", "(", ")", " ", "{", "}", "\n", "\t", "if", " a", "=", "=", "b", ":",
            "  ", "return", " ", "'", "ok", "'", "\r", "\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요",
            " Привет", " ह", "ि", "न", "्", "द", "ी", " العربية", "\u{A0}", "€", "5", "\u{3000}",
            "end", "  ", " ",
        ],
    ),
    (
        "bloom",
        &[
            "Hello", " World", "!", " It's", " WE'LL", " don't", " iPhone", " HelloWorld",
            " ÉCOLE", " naïve", " Straße", " 1234567", " 3", ".", "14", " ١٢٣", " x+=42;", " fn",
            " main", "()", " {}", "\n\t", "if", " a==b:", " ", " return", " 'ok'", "\r\n", "😀👍🏽",
            " 你好世界", " こんにちは", " 안녕하세요", " Привет", " हिन्दी", " العربية", "\u{A0}", "€5",
            "\u{3000}", "end", "   ",
        ],
    ),
    (
        "viking",
        &[
            "Hello", " World", "!", " It's", " WE'LL", " don't", " iPhone", " HelloWorld",
            " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7", " ", "3", ".",
            "1", "4", " ", "١", "٢", "٣", " x+=", "4", "2", ";", " fn", " main", "()", " {}",
            "\n\t", "if", " a==b:", " ", " return", " 'ok'", "\r\n", "😀👍🏽", " 你好世界", " こんにちは",
            " 안녕하세요", " Привет", " हिन्दी", " العربية", "\u{A0}", "€", "5", "\u{3000}", "end",
            "   ",
        ],
    ),
    (
        "superbpe",
        &[
            "Hello World! It's WE'LL don't iPhone HelloWorld ÉCOLE naïve Straße ", "1", "234",
            "567", " ", "3", ".", "14", " ", "١٢٣", " x+=", "42",
            "; fn main() {}\n\tif a==b:  return 'ok'\r\n😀👍🏽 你好世界 こんにちは 안녕하세요 Привет हिन्दी العربية\u{A0}€",
            "5", "\u{3000}end   ",
        ],
    ),
    (
        "kimi-k2",
        &[
            "Hello", " World", "!", " It's", " WE'LL", " don't", " iPhone", " HelloWorld",
            " ÉCOLE", " naïve", " Straße", " ", "123", "456", "7", " ", "3", ".", "14", " ",
            "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a", "==", "b",
            ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " ", "你好世界", " こんにちは", " 안녕하세요",
            " Привет", " ह", "िन", "्द", "ी", " العربية", "\u{A0}", "€", "5", "\u{3000}end",
            "   ",
        ],
    ),
    (
        "afmoe",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "234", "567", " ", "3", ".",
            "14", " ", "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a",
            "==", "b", ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " ", "你好世界", " ", "こんにちは",
            " ", "안녕하세요", " Привет", " हिन्दी", " العربية", "\u{A0}", "€", "5", "\u{3000}end",
            "   ",
        ],
    ),
    (
        "tiny_aya",
        &[
            "Hello", " World", "!", " It's", " WE'LL", " don't", " iPhone", " HelloWorld",
            " ÉCOLE", " naïve", " Straße", " ", "1", "234", "567", " ", "3", ".", "14", " ",
            "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a", "==", "b",
            ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요",
            " Привет", " हिन्दी", " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "exaone-moe",
        &[
            "Hello World", "!", " It", "'s", " WE", "'LL", " don", "'t",
            " iPhone HelloWorld ÉCOLE naïve Straße", " ", "1", "2", "3", "4", "5", "6", "7", " ",
            "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn main", "()",
            " {}\n", "\tif a", "==", "b", ":", " ", " return", " '", "ok", "'\r", "\n", "😀👍🏽",
            " 你好世界 こんにちは 안녕하세요 Привет हिन्दी العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "bailingmoe",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7",
            " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn",
            " main", "()", " {}\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok",
            "'\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "िन", "्द", "ी",
            " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "seed-coder",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7",
            " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn",
            " main", "()", " {}", "\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok",
            "'", "\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "िन", "्द", "ी",
            " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "youtu",
        &[
            "Hello", " World", "!", " It's", " WE'LL", " don't", " iPhone", " HelloWorld",
            " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7", " ", "3", ".",
            "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn", " main", "()",
            " {}\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽",
            " ", "你好世界", " ", "こんにちは", " ", "안녕하세요", " Привет", " हिन्दी", " العربية", "\u{A0}",
            "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "minicpm5",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "123", "456", "7", " ", "3", ".",
            "14", " ", "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a",
            "==", "b", ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " 你好世界", " こんにちは",
            " 안녕하세요", " Привет", " ह", "िन", "्द", "ी", " العربية", "\u{A0}", "€", "5",
            "\u{3000}end", "   ",
        ],
    ),
    (
        "jais-2",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "123", "456", "7", " ", "3", ".",
            "14", " ", "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a",
            "==", "b", ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " 你好世界", " こんにちは",
            " 안녕하세요", " Привет", " ह", "िन", "्द", "ी", " العربية", "\u{A0}", "€", "5",
            "\u{3000}end", "  ", " ",
        ],
    ),
    (
        "default",
        &[
            "Hello", " World", "!", " It", "'", "s", " WE", "'", "LL", " don", "'", "t",
            " iPhone", " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "123", "456", "7", " ",
            "3", ".", "14", " ", "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " ", "{}",
            "\n", "\t", "if", " a", "==", "b", ":", " ", " return", " ", "'", "ok", "'", "\r",
            "\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "ि", "न", "्", "द", "ी",
            " العربية", "\u{A0}", "€", "5", "\u{3000}", "end", "   ",
        ],
    ),
    (
        "llama3",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "123", "456", "7", " ", "3", ".",
            "14", " ", "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a",
            "==", "b", ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " 你好世界", " こんにちは",
            " 안녕하세요", " Привет", " ह", "िन", "्द", "ी", " العربية", "\u{A0}", "€", "5",
            "\u{3000}end", "   ",
        ],
    ),
    (
        "qwen2",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7",
            " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn",
            " main", "()", " {}\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok",
            "'\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "िन", "्द", "ी",
            " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "qwen35",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7",
            " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn",
            " main", "()", " {}\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok",
            "'\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " हिन्दी", " العربية",
            "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "gpt-2",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'", "LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " 1234567", " 3", ".", "14", " ١٢٣",
            " x", "+=", "42", ";", " fn", " main", "()", " {}", "\n", "\t", "if", " a", "==", "b",
            ":", " ", " return", " '", "ok", "'", "\r", "\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요",
            " Привет", " ह", "ि", "न", "्", "द", "ी", " العربية", "\u{A0}", "€", "5", "\u{3000}",
            "end", "   ",
        ],
    ),
    (
        "spark2_5",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7",
            " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn",
            " main", "()", " {}", "\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok",
            "'", "\r", "\n", "😀👍🏽", " ", "你好世界", " ", "こんにちは", " 안녕하세요", " Привет", " हिन्दी",
            " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "granite-embed-multi-97m",
        &[
            "Hello", " World", "!", " It's", " WE'LL", " don't", " i", "Phone", " Hello", "World",
            " É", "COLE", " naïve", " Straße", " ", "123", "456", "7", " ", "3", ".", "14", " ",
            "١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " {}\n", "\tif", " a", "==", "b",
            ":", " ", " return", " '", "ok", "'\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요",
            " Привет", " हिन्दी", " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "ufakzeka",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7",
            " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn",
            " main", "()", " {}\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok",
            "'\r\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "िन", "्द", "ी",
            " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "laguna",
        &[
            "Hello", " World", "!", " It", "'s", " WE", "'LL", " don", "'t", " iPhone",
            " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5", "6", "7",
            " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";", " fn",
            " main", "()", " {}", "\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok",
            "'\r", "\n", "😀👍🏽", " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "िन", "्द", "ी",
            " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "deepseek-llm",
        &[
            "Hello", " World", "!", " It", "'", "s", " WE", "'", "LL", " don", "'", "t",
            " iPhone", " HelloWorld", " É", "COLE", " na", "ï", "ve", " Stra", "ß", "e", " ",
            "1234567", " ", "3", ".", "14", " ", "١٢٣", " x", "+=", "42", ";", " fn", " main",
            "()", " {}", "\n", "\tif", " a", "==", "b", ":", " ", " return", " '", "ok", "'",
            "\r", "\n", "😀👍🏽 ", "你好世界", " ", "こんにちは", " ", "안녕하세요", " Привет", " ", "हिन्दी",
            " العربية\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "deepseek-coder",
        &[
            "Hello", " World", "!", " It", "'", "s", " WE", "'", "LL", " don", "'", "t",
            " iPhone", " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "1", "2", "3", "4", "5",
            "6", "7", " ", "3", ".", "1", "4", " ", "١", "٢", "٣", " x", "+=", "4", "2", ";",
            " fn", " main", "()", " {}", "\n", "\tif", " a", "==", "b", ":", " ", " return", " '",
            "ok", "'", "\r", "\n", "😀👍🏽", " ", "你好世界", " ", "こんにちは", " ", "안녕하세요", " Привет", " ",
            "ह", "ि", "न", "्", "द", "ी", " العربية", "\u{A0}", "€", "5", "\u{3000}end", "   ",
        ],
    ),
    (
        "falcon",
        &[
            "Hello", " World", "!", " It", "'", "s", " WE", "'", "LL", " don", "'", "t",
            " iPhone", " HelloWorld", " ÉCOLE", " naïve", " Straße", " ", "123", "456", "7", " 3",
            ".", "14", " ١٢٣", " x", "+=", "42", ";", " fn", " main", "()", " ", "{}", "\n", "\t",
            "if", " a", "==", "b", ":", " ", " return", " ", "'", "ok", "'", "\r", "\n", "😀👍🏽",
            " 你好世界", " こんにちは", " 안녕하세요", " Привет", " ह", "ि", "न", "्", "द", "ी", " العربية",
            "\u{A0}", "€", "5", "\u{3000}", "end", "   ",
        ],
    ),
];

#[test]
fn pre_tokenizer_splits_match_llama_cpp() {
    for (name, want) in SPLITS {
        let spec = pre_table::lookup(name).unwrap();
        let pre = pretokenize::PreTokenizer::new(spec.regexes).unwrap();
        assert_eq!(pre.split(SPLIT_TEXT), *want, "pre-tokenizer `{name}`");
    }
}

#[test]
fn every_pre_tokenizer_name_builds() {
    let mut n = 0;
    for name in pre_table::known_names() {
        let spec = pre_table::lookup(name).unwrap();
        let pre = pretokenize::PreTokenizer::new(spec.regexes)
            .unwrap_or_else(|e| panic!("`{name}`: {e}"));
        let pieces = pre.split(SPLIT_TEXT);
        assert_eq!(pieces.concat(), SPLIT_TEXT, "`{name}` loses text");
        n += 1;
    }
    assert!(n >= 90, "only {n} names");
    assert!(pre_table::lookup("no-such-pre").is_none());
}

#[test]
fn superbpe_groups_digits_from_the_right() {
    let pre =
        pretokenize::PreTokenizer::new(pre_table::lookup("superbpe").unwrap().regexes).unwrap();
    assert_eq!(pre.split("a1234567b"), ["a", "1", "234", "567", "b"]);
}

#[test]
fn unknown_pre_tokenizer_warns_and_uses_gpt2() {
    let t = Tokenizer::from_metadata(&metadata(&bpe_writer("no-such-pre"))).unwrap();
    let w = t.warning().unwrap();
    assert!(w.contains("`no-such-pre`") && w.contains("GPT-2"), "{w}");
    assert_eq!(t.pre_tokenizer(), Some("no-such-pre"));
    // GPT-2's rules: "12" is one piece.
    assert_eq!(t.encode("12", false), vec![id(&t, "12")]);
    let known = Tokenizer::from_metadata(&metadata(&bpe_writer("gpt-4o"))).unwrap();
    assert_eq!(known.warning(), None);
    let mut md = metadata(&bpe_writer("x"));
    md.0.remove("tokenizer.ggml.pre");
    let t = Tokenizer::from_metadata(&md).unwrap();
    assert!(t.warning().unwrap().contains("`default`"));
    // SentencePiece vocabularies have no pre-tokenizer and no warning.
    let t = Tokenizer::from_metadata(&metadata(&spm_writer(|_| {}))).unwrap();
    assert_eq!(t.warning(), None);
}

#[test]
fn parse_special_false_tokenizes_control_tokens_as_text() {
    let t = Tokenizer::from_metadata(&metadata(&bpe_writer("gpt-2"))).unwrap();
    let ids = t.encode_with("<|im_start|>hello", false, false);
    assert!(!ids.contains(&1), "{ids:?}");
    assert_eq!(t.encode_with("<|im_start|>hello", false, true)[0], 1);
}
