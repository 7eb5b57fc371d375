//! The pre-tokenizers llama.cpp knows: `tokenizer.ggml.pre` names -> regex lists and settings,
//! transcribed as data from llama.cpp's `llama_vocab::impl::load` (names, per-name flags) and
//! `llm_tokenizer_bpe` (the regexes of each pre-tokenizer type). [`super::pretokenize`] runs them.

// --- llama.cpp's regexes (data transcribed from `llm_tokenizer_bpe`) ---------------------------

pub(crate) const GPT2: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
pub(crate) const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub(crate) const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub(crate) const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub(crate) const KIMI_K2: &str = r"\p{Han}+";
pub(crate) const AFMOE_DIGITS: &str = r"\p{AFMoE_digits}";
pub(crate) const TINY_AYA_DIGITS: &str = r"\d{1,3}(?=(?:\d{3})*\b)";
pub(crate) const NEWLINES: &str = r"[^\n]+|[\n]+";
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";
const CJK_KANA: &str = r"[一-龥぀-ゟ゠-ヿ]+";
const DEEPSEEK3_MAIN: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const T_DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"];
const T_LLAMA3: &[&str] = &[LLAMA3];
const T_JAIS2: &[&str] = &[
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}",
];
const T_DEEPSEEK_LLM: &[&str] = &[
    r"[\r\n]",
    // Written with escapes where Unicode normalization would change a character (U+1FD3,
    // U+212A, ...): editors must not alter this data.
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u{1F7D}ᾀ-ᾴᾶ-ᾼ\u{1FBE}ῂ-ῄῆ-ῌῐ-\u{1FD3}ῖ-\u{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u{2126}ℨ\u{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
];
const T_DEEPSEEK3: &[&str] = &[r"\p{N}{1,3}", CJK_KANA, DEEPSEEK3_MAIN];
const T_SPARK2_5: &[&str] = &[
    r"\p{N}{1,3}",
    CJK_KANA,
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+"##,
    r"\p{N}",
];
const T_YOUTU: &[&str] = &[
    r"[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const T_DEEPSEEK_CODER: &[&str] = &[
    r"[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];
const T_FALCON: &[&str] = &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"];
const T_STARCODER: &[&str] = &[r"\p{N}", GPT2];
const T_GPT2: &[&str] = &[GPT2];
const T_QWEN2: &[&str] = &[QWEN2];
const T_QWEN35: &[&str] = &[QWEN35];
const T_BLOOM: &[&str] = &[BLOOM];
const T_VIKING: &[&str] = &[BLOOM, r"\p{N}"];
const T_TEKKEN: &[&str] = &[
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const T_CHAMELEON: &[&str] = &[
    r"<sentinel:[0-9]+>",
    r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    r"([\t\n]|    |  )",
    r"\p{N}",
    r"[\p{P}!-/:-@\[-`{-~]",
    GPT2,
];
const T_GPT4O: &[&str] = &[GPT4O];
const T_GRANITE_EMB_MULTI: &[&str] = &[
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const T_TINY_AYA: &[&str] = &[
    TINY_AYA_DIGITS,
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const T_KIMI_K2: &[&str] = &[KIMI_K2];
const T_SUPERBPE: &[&str] = &[r"\p{N}+", r"(?=(\d{3})+(?!\d))"];
const T_BAILINGMOE: &[&str] = &[
    r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
];
const T_SEED_CODER: &[&str] = &[
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const T_UFAKZEKA: &[&str] =
    &[r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"];
const T_AFMOE: &[&str] = &[
    AFMOE_DIGITS,
    r"[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+",
    DEEPSEEK3_MAIN,
];
const T_LAGUNA: &[&str] = &[NEWLINES, QWEN2];
const T_EXAONE_MOE: &[&str] = &[
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+",
];
const T_NEWLINES: &[&str] = &[NEWLINES];
const T_MINICPM5: &[&str] = &[
    r"\p{N}{1,3}",
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const T_WHITESPACE: &[&str] = &[r"\S+"];

// --- the table: `tokenizer.ggml.pre` names -> settings ----------------------------------------

/// Flags of a table row (llama.cpp's per-name settings that change tokens).
const IGNORE_MERGES: u8 = 1;
const ADD_BOS: u8 = 2;
const NO_BOS: u8 = 4;
/// Spaces become `▁` before BPE (`escape_whitespaces`).
const ESCAPE_SPACES: u8 = 8;
/// Tokens are raw UTF-8, not GPT-2 byte characters (`byte_encode = false`).
const RAW_BYTES: u8 = 16;
/// Gemma 4: a word of newlines only is looked up whole before merging.
const NEWLINE_WORDS: u8 = 32;
const GEMMA4: u8 = ESCAPE_SPACES | RAW_BYTES | NEWLINE_WORDS;

/// What a `tokenizer.ggml.pre` name selects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreSpec {
    pub(crate) regexes: &'static [&'static str],
    /// A pre-tokenized word that is itself a token is emitted without merging.
    pub(crate) ignore_merges: bool,
    /// BOS is added by default (the GGUF's `add_bos_token` still wins).
    pub(crate) add_bos: bool,
    /// The vocabulary has no BOS token by default.
    pub(crate) no_bos: bool,
    pub(crate) escape_spaces: bool,
    pub(crate) byte_encode: bool,
    /// Gemma 4: a word of newlines only is looked up whole before merging.
    pub(crate) newline_words: bool,
}

struct Row {
    names: &'static [&'static str],
    regexes: &'static [&'static str],
    flags: u8,
}

const fn row(names: &'static [&'static str], regexes: &'static [&'static str], flags: u8) -> Row {
    Row {
        names,
        regexes,
        flags,
    }
}

/// Every name llama.cpp's `llama_vocab::impl::load` accepts, in its order.
const TABLE: &[Row] = &[
    row(&["default"], T_DEFAULT, 0),
    row(&["minicpm5"], T_MINICPM5, IGNORE_MERGES),
    row(
        &[
            "llama3",
            "llama-v3",
            "llama-bpe",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
            "jina-v5-nano",
        ],
        T_LLAMA3,
        IGNORE_MERGES | ADD_BOS,
    ),
    row(&["deepseek-llm"], T_DEEPSEEK_LLM, 0),
    row(&["deepseek-coder"], T_DEEPSEEK_CODER, 0),
    row(&["deepseek-v3"], T_DEEPSEEK3, 0),
    row(&["spark2_5"], T_SPARK2_5, 0),
    row(&["youtu"], T_YOUTU, IGNORE_MERGES),
    row(&["falcon"], T_FALCON, 0),
    row(&["mpt"], T_GPT2, 0),
    row(&["starcoder"], T_STARCODER, 0),
    row(
        &[
            "gpt-2",
            "phi-2",
            "jina-es",
            "jina-de",
            "gigachat",
            "jina-v2-es",
            "jina-v2-de",
            "a.x-4.0",
            "mellum",
            "modern-bert",
        ],
        T_GPT2,
        0,
    ),
    row(&["jais-2"], T_JAIS2, 0),
    row(&["gemma4", "granite-embed-multi-311m"], T_NEWLINES, GEMMA4),
    row(&["sarvam-moe"], T_NEWLINES, ESCAPE_SPACES | RAW_BYTES),
    row(&["jina-v1-en", "jina-v2-code", "roberta-bpe"], T_GPT2, 0),
    row(&["whitespace"], T_WHITESPACE, RAW_BYTES),
    row(&["refact", "command-r"], T_STARCODER, 0),
    row(
        &["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2"],
        T_QWEN2,
        0,
    ),
    row(&["qwen35"], T_QWEN35, 0),
    row(&["stablelm2"], T_QWEN2, 0),
    row(&["olmo"], T_GPT2, 0),
    row(&["dbrx", "smaug-bpe"], T_LLAMA3, 0),
    row(&["poro-chat"], T_BLOOM, 0),
    row(&["chatglm-bpe"], T_LLAMA3, NO_BOS),
    row(&["glm4", "glm5"], T_LLAMA3, NO_BOS | IGNORE_MERGES),
    row(&["viking"], T_VIKING, 0),
    row(&["jais"], T_GPT2, 0),
    row(&["tekken"], T_TEKKEN, IGNORE_MERGES | ADD_BOS),
    row(&["smollm", "codeshell"], T_STARCODER, 0),
    row(&["bloom", "gpt3-finnish"], T_BLOOM, 0),
    row(&["exaone"], T_STARCODER, 0),
    row(&["exaone4"], T_GPT2, 0),
    row(&["exaone-moe"], T_EXAONE_MOE, 0),
    row(&["chameleon"], T_CHAMELEON, ADD_BOS),
    row(&["minerva-7b"], T_STARCODER, 0),
    row(&["megrez"], T_QWEN2, 0),
    row(&["gpt-4o", "llama4", "kanana2", "talkie"], T_GPT4O, 0),
    row(
        &["granite-embed-multi-97m"],
        T_GRANITE_EMB_MULTI,
        IGNORE_MERGES,
    ),
    row(&["tiny_aya", "cohere2moe"], T_TINY_AYA, 0),
    row(&["superbpe"], T_SUPERBPE, 0),
    row(&["trillion", "granite-docling"], T_GPT2, 0),
    row(&["bailingmoe", "bailingmoe2", "llada-moe"], T_BAILINGMOE, 0),
    row(&["seed-coder"], T_SEED_CODER, 0),
    row(&["hunyuan"], T_QWEN2, 0),
    row(&["hunyuan-dense", "hy_v4", "joyai-llm"], T_DEEPSEEK3, 0),
    row(&["kimi-k2"], T_KIMI_K2, 0),
    row(&["ufakzeka"], T_UFAKZEKA, 0),
    row(&["grok-2"], T_QWEN2, 0),
    row(&["afmoe"], T_AFMOE, 0),
    row(&["laguna"], T_LAGUNA, 0),
    row(&["minimax-m2"], T_GPT4O, 0),
    row(&["solar-open"], T_QWEN2, 0),
    row(&["mellum2"], T_STARCODER, 0),
];

/// The settings llama.cpp uses for a `tokenizer.ggml.pre` name; `None` for a name it rejects.
pub(crate) fn lookup(name: &str) -> Option<PreSpec> {
    let row = TABLE.iter().find(|r| r.names.contains(&name))?;
    let has = |f: u8| row.flags & f != 0;
    Some(PreSpec {
        regexes: row.regexes,
        ignore_merges: has(IGNORE_MERGES),
        add_bos: has(ADD_BOS),
        no_bos: has(NO_BOS),
        escape_spaces: has(ESCAPE_SPACES),
        byte_encode: !has(RAW_BYTES),
        newline_words: has(NEWLINE_WORDS),
    })
}

/// GPT-2's rules: what an unknown name falls back to (with a warning).
pub(crate) fn gpt2() -> PreSpec {
    PreSpec {
        regexes: T_GPT2,
        ignore_merges: false,
        add_bos: false,
        no_bos: false,
        escape_spaces: false,
        byte_encode: true,
        newline_words: false,
    }
}

/// Every `tokenizer.ggml.pre` name that is recognised.
#[cfg(test)]
pub(crate) fn known_names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().flat_map(|r| r.names.iter().copied())
}
