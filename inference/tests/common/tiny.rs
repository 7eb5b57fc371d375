//! Tiny random-weight GGUF models, one per architecture, for comparing our forward pass with
//! llama.cpp's (`tests/architectures.rs`; golden logits in `tests/data/arch/`, made by
//! `scripts/make-arch-golden.sh`, see `tests/data/README.md`).
//!
//! Every model is F32, deterministic (SplitMix64 seeded by the architecture and tensor names, so
//! adding a tensor never changes the others), small (n_embd 64, 4 heads, 2 KV heads, 2–4 layers)
//! and has exactly the tensor names, shapes and metadata keys llama.cpp loads for its
//! `general.architecture`, with each architecture's distinctive parts switched on (see the
//! function of each). The vocabulary is a byte-level BPE one (GPT-2 byte tokens, 60 merges, 4
//! special tokens): 320 tokens.
//!
//! A model *name* is the architecture, or `<arch>-<variant>` for a second file of the same
//! architecture (`phi3-long`).
#![allow(dead_code)]

use inference::gguf::GgufWriter;

/// Models every engine build must match llama.cpp on (name = architecture or `arch-variant`).
pub const ARCHS: &[&str] = &[
    "llama",
    "qwen2",
    "gemma3",
    "qwen3",
    "gemma2",
    "phi3",
    "phi3-long",
    "phi3-partial",
    "smollm3",
    "granite",
    "olmo2",
    "starcoder2",
    "mistral3",
];

/// Architectures not implemented yet (their tests are ignored).
pub const STRETCH_ARCHS: &[&str] = &["gemma4", "qwen35"];

pub const N_VOCAB: usize = 320;
/// `<|endoftext|>`.
pub const EOS: u32 = 0;
/// `<|startoftext|>`.
pub const BOS: u32 = 1;
/// Context of the sessions (llama.cpp's and ours): phi3 picks its RoPE factors from it.
pub const N_CTX: usize = 256;
/// Sliding window of the sliding-window architectures (shorter than the sequences).
pub const N_SWA: u32 = 8;

const N_EMBD: usize = 64;
const N_HEAD: usize = 4;
const N_HEAD_KV: usize = 2;
const HEAD_DIM: usize = 16;

/// The architecture of a model name (`phi3-long` → `phi3`).
pub fn arch_of(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

/// Token sequences evaluated by the tests (all positions' logits): BOS, then random non-special
/// tokens; both longer than the sliding window, the first long enough for mistral3's attention
/// temperature (original context 16) to take three values.
pub fn tiny_sequences() -> Vec<Vec<u32>> {
    let mut r = Rng(0x005E_ED0F_5EC5);
    [40usize, 14]
        .iter()
        .map(|&n| {
            let mut v = vec![BOS];
            while v.len() < n {
                v.push(4 + (r.next() % (N_VOCAB as u64 - 4)) as u32);
            }
            v
        })
        .collect()
}

/// The GGUF bytes of tiny model `name` (one of [`ARCHS`] or [`STRETCH_ARCHS`]).
pub fn tiny_model(name: &str) -> Vec<u8> {
    let mut t = Tiny::new(name);
    match name {
        "llama" => llama(&mut t),
        "qwen2" => qwen2(&mut t),
        "gemma3" => gemma3(&mut t),
        "qwen3" => qwen3(&mut t),
        "gemma2" => gemma2(&mut t),
        "phi3" => phi3(&mut t, 256, HEAD_DIM),
        "phi3-long" => phi3(&mut t, 128, HEAD_DIM),
        "phi3-partial" => phi3(&mut t, 128, 12),
        "smollm3" => smollm3(&mut t),
        "granite" => granite(&mut t),
        "olmo2" => olmo2(&mut t),
        "starcoder2" => starcoder2(&mut t),
        "mistral3" => mistral3(&mut t),
        other => panic!("no tiny model `{other}`"),
    }
    t.w.to_bytes()
}

// ----------------------------------------------------------------------------------------------
// Golden files (tests/data/arch/<model>.json) and the comparison
// ----------------------------------------------------------------------------------------------

/// Max |Δlogit| against llama.cpp (F32 weights, F32 KV cache, both exact up to float rounding;
/// llama.cpp's CPU GELU goes through an fp16 table, ~3e-3 off exact).
pub const TOL: f32 = 1e-2;

/// The golden file of model `name`.
pub fn golden(name: &str) -> serde_json::Value {
    let p = format!("{}/tests/data/arch/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let s = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e} (run scripts/make-arch-golden.sh)"));
    serde_json::from_str(&s).expect("golden JSON")
}

pub struct Golden {
    pub n_vocab: usize,
    /// (tokens, logits of every position, row-major).
    pub sequences: Vec<(Vec<u32>, Vec<f32>)>,
}

pub fn parse_golden(name: &str) -> Golden {
    let g = golden(name);
    assert_eq!(
        g["model"].as_str(),
        Some(name),
        "{name}: golden file of another model"
    );
    let n_vocab = g["n_vocab"].as_u64().expect("n_vocab") as usize;
    let sequences = g["sequences"]
        .as_array()
        .expect("sequences")
        .iter()
        .map(|s| {
            let tokens = super::ids(&s["tokens"]);
            let rows = s["logits"].as_array().expect("logits");
            assert_eq!(
                rows.len(),
                tokens.len(),
                "{name}: one logit row per position"
            );
            let mut l = Vec::with_capacity(rows.len() * n_vocab);
            for r in rows {
                let r = r.as_array().expect("row");
                assert_eq!(r.len(), n_vocab, "{name}: row length");
                l.extend(r.iter().map(|x| x.as_f64().expect("logit") as f32));
            }
            (tokens, l)
        })
        .collect();
    Golden { n_vocab, sequences }
}

/// Worst gap over one model.
#[derive(Default, Debug)]
pub struct Worst {
    pub delta: f32,
    /// (sequence, position, token) of `delta`.
    pub at: (usize, usize, usize),
    pub positions: usize,
}

/// Compare `eval(tokens)` (all positions' logits) with llama.cpp's for every golden sequence:
/// per position, top-1 equal (either of a near tie) and max |Δ| <= `tol`. Panics with model, sequence, position and the
/// worst token.
pub fn check_logits(
    name: &str,
    n_vocab: usize,
    tol: f32,
    mut eval: impl FnMut(&[u32]) -> Vec<f32>,
) -> Worst {
    let g = parse_golden(name);
    assert_eq!(g.n_vocab, n_vocab, "{name}: vocabulary size");
    let argmax = inference::sampler::argmax;
    let mut w = Worst::default();
    for (si, (tokens, want)) in g.sequences.iter().enumerate() {
        let got = eval(tokens);
        assert_eq!(got.len(), want.len(), "{name}/seq {si}: logits shape");
        for pos in 0..tokens.len() {
            let (a, b) = (
                &got[pos * n_vocab..(pos + 1) * n_vocab],
                &want[pos * n_vocab..(pos + 1) * n_vocab],
            );
            let (tok, d) = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .enumerate()
                .fold(
                    (0, 0f32),
                    |m, (i, d)| if d > m.1 || d.is_nan() { (i, d) } else { m },
                );
            assert!(
                d <= tol,
                "{name}/seq {si}/pos {pos}: max |Δlogit| {d:.3e} at token {tok} (ours {}, llama.cpp {})",
                a[tok],
                b[tok]
            );
            let (ta, tb) = (argmax(a), argmax(b));
            // Random weights make a few near ties (llama.cpp's top two within 2 × tol): there
            // either token may come first, as long as every logit is within tol.
            let near_tie = b[ta as usize] >= b[tb as usize] - 2.0 * tol;
            assert!(
                ta == tb || near_tie,
                "{name}/seq {si}/pos {pos}: top-1 {ta} ({}), llama.cpp {tb} ({})",
                a[ta as usize],
                b[tb as usize]
            );
            if d > w.delta {
                w.delta = d;
                w.at = (si, pos, tok);
            }
            w.positions += 1;
        }
    }
    w
}

/// FNV-1a of a model's bytes (the golden files record the one llama.cpp ran).
pub fn fnv1a_bytes(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

// ----------------------------------------------------------------------------------------------
// Architectures
// ----------------------------------------------------------------------------------------------

/// Llama: RMSNorm, SwiGLU, GQA, original (adjacent-pair) RoPE with Llama 3 `rope_freqs`
/// divisors, untied `output.weight`.
fn llama(t: &mut Tiny) {
    let d = Dims::default();
    t.hparams(&d, 500000.0);
    t.embeddings(true);
    t.vals(
        "rope_freqs.weight",
        &[8],
        &[1.0, 1.0, 1.0, 1.6, 2.5, 4.0, 8.0, 8.0],
    );
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
    }
}

/// Qwen2: Q/K/V biases, NEOX RoPE, tied embeddings.
fn qwen2(t: &mut Tiny) {
    let d = Dims::default();
    t.hparams(&d, 1000000.0);
    t.embeddings(false);
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.bias(&format!("blk.{i}.attn_q.bias"), d.q_dim());
        t.bias(&format!("blk.{i}.attn_k.bias"), d.kv_dim());
        t.bias(&format!("blk.{i}.attn_v.bias"), d.kv_dim());
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
    }
}

/// Gemma 3: head size 32 (`key_length`, Q width 128 ≠ n_embd), per-head Q/K RMSNorm, post-norms,
/// GeGLU, sliding window 8 on layers 0 and 1 (`sliding_window_pattern` 3: layer 2 global), local
/// RoPE base 10000 and global base 1e6 with linear scaling ×4, embeddings × √n_embd, tied.
fn gemma3(t: &mut Tiny) {
    let d = Dims {
        n_layer: 3,
        head_dim: 32,
        eps: 1e-6,
        ..Dims::default()
    };
    t.hparams(&d, 1000000.0);
    t.u32("attention.sliding_window", N_SWA);
    t.u32("attention.sliding_window_pattern", 3);
    t.f32("rope.freq_base_swa", 10000.0);
    t.str("rope.scaling.type", "linear");
    t.f32("rope.scaling.factor", 4.0);
    t.embeddings(false);
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.norm(&format!("blk.{i}.attn_q_norm.weight"), d.head_dim);
        t.norm(&format!("blk.{i}.attn_k_norm.weight"), d.head_dim);
        t.norm_gain(&format!("blk.{i}.post_attention_norm.weight"), N_EMBD, 4.0);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
        t.norm_gain(&format!("blk.{i}.post_ffw_norm.weight"), N_EMBD, 4.0);
    }
}

/// Qwen 3: per-head Q/K RMSNorm before RoPE, head size 32 (`key_length`; Q width 128 ≠ n_embd),
/// no biases, tied.
fn qwen3(t: &mut Tiny) {
    let d = Dims {
        head_dim: 32,
        ..Dims::default()
    };
    t.hparams(&d, 1000000.0);
    t.embeddings(false);
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.norm(&format!("blk.{i}.attn_q_norm.weight"), d.head_dim);
        t.norm(&format!("blk.{i}.attn_k_norm.weight"), d.head_dim);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
    }
}

/// Gemma 2: attention logit soft-cap 5 and final logit soft-cap 10, head size 32 (`key_length`;
/// Q scaled by 1/√key_length), sliding window 8 on even layers (default pattern 2: layers 0 and 2
/// local, 1 global), post-norms, GeGLU, embeddings × √n_embd, tied.
fn gemma2(t: &mut Tiny) {
    let d = Dims {
        n_layer: 3,
        head_dim: 32,
        eps: 1e-6,
        ..Dims::default()
    };
    t.hparams(&d, 10000.0);
    t.u32("attention.sliding_window", N_SWA);
    t.f32("attn_logit_softcapping", 5.0);
    t.f32("final_logit_softcapping", 10.0);
    t.embeddings(false);
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.norm_gain(&format!("blk.{i}.post_attention_norm.weight"), N_EMBD, 4.0);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
        t.norm_gain(&format!("blk.{i}.post_ffw_norm.weight"), N_EMBD, 4.0);
    }
}

/// Phi-3 (128k-style LongRoPE): fused `attn_qkv` (Q | K | V rows), fused `ffn_up` (gate rows
/// then up rows, 2 × n_ff), `rope_factors_long` / `rope_factors_short` (one copy for all layers),
/// `rope.scaling.attn_factor` = √(1 + ln(ctx / orig) / ln(orig)), NEOX RoPE, untied output, and a
/// `sliding_window` key that llama.cpp ignores for phi3. llama.cpp uses the long factors when the
/// session's context (256 here) exceeds `rope.scaling.original_context_length`: `phi3` has 256
/// (short factors), `phi3-long` 128 (long factors). `phi3-partial` is Phi-4-mini's partial
/// RoPE: the first `n_rot` = 12 of 16 dims of each head rotate (factors for those only).
fn phi3(t: &mut Tiny, orig_ctx: u32, n_rot: usize) {
    let d = Dims {
        n_ff: 96,
        ctx: 1024,
        rot: n_rot,
        ..Dims::default()
    };
    t.hparams(&d, 10000.0);
    t.u32("rope.scaling.original_context_length", orig_ctx);
    let scale = d.ctx as f64 / orig_ctx as f64;
    let attn_factor = (1.0 + scale.ln() / (orig_ctx as f64).ln()).sqrt();
    t.f32("rope.scaling.attn_factor", attn_factor as f32);
    t.u32(
        "attention.sliding_window",
        if orig_ctx == 256 { 16 } else { 0 },
    );
    t.embeddings(true);
    let half = n_rot / 2;
    t.vals(
        "rope_factors_long.weight",
        &[half as u64],
        &[1.5, 2.0, 3.0, 4.5, 6.0, 8.0, 12.0, 16.0][..half],
    );
    t.vals(
        "rope_factors_short.weight",
        &[half as u64],
        &[1.0, 1.1, 1.25, 1.4, 1.6, 1.8, 2.0, 2.2][..half],
    );
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.mat(
            &format!("blk.{i}.attn_qkv.weight"),
            N_EMBD,
            d.q_dim() + 2 * d.kv_dim(),
        );
        t.mat(&format!("blk.{i}.attn_output.weight"), d.q_dim(), N_EMBD);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.mat(&format!("blk.{i}.ffn_up.weight"), N_EMBD, 2 * d.n_ff);
        t.mat(&format!("blk.{i}.ffn_down.weight"), d.n_ff, N_EMBD);
    }
}

/// SmolLM3: Llama-like (original RoPE, SwiGLU, GQA, tied) but every 4th layer (il = 3) has no
/// RoPE; 4 layers.
fn smollm3(t: &mut Tiny) {
    let d = Dims {
        n_layer: 4,
        ..Dims::default()
    };
    t.hparams(&d, 5000000.0);
    t.embeddings(false);
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
    }
}

/// Granite (3.x): Llama-like with `embedding_scale` 6 (input embeddings ×), `residual_scale` 0.3
/// (attention and FFN outputs × before each residual add), `attention.scale` 0.5 (replaces
/// 1/√head_dim) and `logit_scale` 2.5 (logits are DIVIDED by it); untied output.
fn granite(t: &mut Tiny) {
    let d = Dims::default();
    t.hparams(&d, 10000.0);
    t.f32("embedding_scale", 6.0);
    t.f32("residual_scale", 0.3);
    t.f32("attention.scale", 0.5);
    t.f32("logit_scale", 2.5);
    // Small embeddings (× 6 on input), a separate output matrix for logits of a few units.
    t.embeddings_scaled(0.15, Some(2.0));
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
    }
}

/// OLMo 2: no pre-norms at all; RMSNorm over the whole Q (n_embd wide) and the whole K (n_head_kv
/// × head_dim wide) before RoPE; post-attention and post-FFN norms on the branch outputs before
/// each residual add; NEOX RoPE; untied output (required).
fn olmo2(t: &mut Tiny) {
    let d = Dims::default();
    t.hparams(&d, 500000.0);
    t.embeddings(true);
    for i in 0..d.n_layer {
        t.attn_qkvo(i, &d);
        t.norm(&format!("blk.{i}.attn_q_norm.weight"), d.q_dim());
        t.norm(&format!("blk.{i}.attn_k_norm.weight"), d.kv_dim());
        t.norm(&format!("blk.{i}.post_attention_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
        t.norm(&format!("blk.{i}.post_ffw_norm.weight"), N_EMBD);
    }
}

/// StarCoder 2: LayerNorm (mean and variance, `layer_norm_epsilon`) with biases everywhere (norms,
/// Q/K/V, attention output, FFN up and down), plain GELU MLP (up → GELU → down, no gate), NEOX
/// RoPE, tied.
fn starcoder2(t: &mut Tiny) {
    let d = Dims {
        n_ff: 160,
        rms: false,
        ..Dims::default()
    };
    t.hparams(&d, 100000.0);
    t.embeddings(false);
    t.bias("output_norm.bias", N_EMBD);
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.bias(&format!("blk.{i}.attn_norm.bias"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.bias(&format!("blk.{i}.attn_q.bias"), d.q_dim());
        t.bias(&format!("blk.{i}.attn_k.bias"), d.kv_dim());
        t.bias(&format!("blk.{i}.attn_v.bias"), d.kv_dim());
        t.bias(&format!("blk.{i}.attn_output.bias"), N_EMBD);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.bias(&format!("blk.{i}.ffn_norm.bias"), N_EMBD);
        t.mat(&format!("blk.{i}.ffn_up.weight"), N_EMBD, d.n_ff);
        t.bias(&format!("blk.{i}.ffn_up.bias"), d.n_ff);
        t.mat(&format!("blk.{i}.ffn_down.weight"), d.n_ff, N_EMBD);
        t.bias(&format!("blk.{i}.ffn_down.bias"), N_EMBD);
    }
}

/// Mistral 3 (Ministral 3 text model): Llama-like (original RoPE, SwiGLU, GQA, untied) with head
/// size 32 (`key_length`; Q width 128 ≠ n_embd), YaRN RoPE (factor 16, original context 16,
/// beta_fast 32, beta_slow 1, `yarn_log_multiplier` 1, base 1000 so the ramp covers dims 0..3) and
/// Llama-4 attention temperature (`attention.temperature_scale` 0.5: Q × (1 + 0.5 ln(1 +
/// floor(pos / 16)))).
fn mistral3(t: &mut Tiny) {
    let d = Dims {
        head_dim: 32,
        ..Dims::default()
    };
    t.hparams(&d, 1000.0);
    t.str("rope.scaling.type", "yarn");
    t.f32("rope.scaling.factor", 16.0);
    t.u32("rope.scaling.original_context_length", 16);
    t.f32("rope.scaling.yarn_beta_fast", 32.0);
    t.f32("rope.scaling.yarn_beta_slow", 1.0);
    t.f32("rope.scaling.yarn_log_multiplier", 1.0);
    t.f32("attention.temperature_scale", 0.5);
    t.embeddings(true);
    for i in 0..d.n_layer {
        t.norm(&format!("blk.{i}.attn_norm.weight"), N_EMBD);
        t.attn_qkvo(i, &d);
        t.norm(&format!("blk.{i}.ffn_norm.weight"), N_EMBD);
        t.gated_ffn(i, d.n_ff);
    }
}

// ----------------------------------------------------------------------------------------------
// Building blocks
// ----------------------------------------------------------------------------------------------

struct Dims {
    n_layer: usize,
    n_ff: usize,
    head_dim: usize,
    ctx: u32,
    /// RMSNorm (`layer_norm_rms_epsilon`) or LayerNorm (`layer_norm_epsilon`).
    rms: bool,
    /// `rope.dimension_count` (partial RoPE when < head_dim).
    rot: usize,
    eps: f32,
}

impl Default for Dims {
    fn default() -> Self {
        Dims {
            n_layer: 2,
            n_ff: 128,
            head_dim: HEAD_DIM,
            ctx: N_CTX as u32,
            rms: true,
            eps: 1e-5,
            rot: 0,
        }
    }
}

impl Dims {
    fn q_dim(&self) -> usize {
        N_HEAD * self.head_dim
    }
    fn kv_dim(&self) -> usize {
        N_HEAD_KV * self.head_dim
    }
}

struct Tiny {
    name: String,
    arch: String,
    w: GgufWriter,
}

impl Tiny {
    fn new(name: &str) -> Self {
        let arch = arch_of(name).to_owned();
        let mut w = GgufWriter::new();
        w.str_kv("general.architecture", &arch)
            // Not the model name: llama.cpp sets phi3 token attributes by `general.name` and then
            // needs `<s>`, `</s>` and `<unk>` tokens when it contains "phi3".
            .str_kv("general.name", "wasm-chord tiny test model");
        let (tokens, types, merges) = vocab();
        let toks: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let merges: Vec<&str> = merges.iter().map(String::as_str).collect();
        w.str_kv("tokenizer.ggml.model", "gpt2")
            .str_kv("tokenizer.ggml.pre", "gpt-2")
            .str_array_kv("tokenizer.ggml.tokens", &toks)
            .i32_array_kv("tokenizer.ggml.token_type", &types)
            .str_array_kv("tokenizer.ggml.merges", &merges)
            .u32_kv("tokenizer.ggml.bos_token_id", BOS)
            .u32_kv("tokenizer.ggml.eos_token_id", EOS)
            .u32_kv("tokenizer.ggml.padding_token_id", EOS);
        Tiny {
            name: name.to_owned(),
            arch,
            w,
        }
    }

    fn u32(&mut self, k: &str, v: u32) {
        self.w.u32_kv(&format!("{}.{k}", self.arch), v);
    }
    fn f32(&mut self, k: &str, v: f32) {
        self.w.f32_kv(&format!("{}.{k}", self.arch), v);
    }
    fn str(&mut self, k: &str, v: &str) {
        self.w.str_kv(&format!("{}.{k}", self.arch), v);
    }

    /// The keys every architecture has.
    fn hparams(&mut self, d: &Dims, rope_base: f32) {
        self.u32("context_length", d.ctx);
        self.u32("embedding_length", N_EMBD as u32);
        self.u32("block_count", d.n_layer as u32);
        self.u32("feed_forward_length", d.n_ff as u32);
        self.u32("attention.head_count", N_HEAD as u32);
        self.u32("attention.head_count_kv", N_HEAD_KV as u32);
        if d.head_dim != N_EMBD / N_HEAD {
            self.u32("attention.key_length", d.head_dim as u32);
            self.u32("attention.value_length", d.head_dim as u32);
        }
        let rot = if d.rot == 0 { d.head_dim } else { d.rot };
        self.u32("rope.dimension_count", rot as u32);
        self.f32("rope.freq_base", rope_base);
        if d.rms {
            self.f32("attention.layer_norm_rms_epsilon", d.eps);
        } else {
            self.f32("attention.layer_norm_epsilon", d.eps);
        }
    }

    /// Data of a tensor from its own generator, seeded by architecture and tensor name: the
    /// variants of an architecture (`phi3`, `phi3-long`) have the same weights.
    fn rng(&self, tensor: &str) -> Rng {
        Rng(fnv1a(&format!("{}/{tensor}", self.arch)))
    }

    fn tensor(&mut self, name: &str, dims: &[u64], f: impl Fn(&mut Rng) -> f32) {
        let n: u64 = dims.iter().product();
        let mut r = self.rng(name);
        let data: Vec<f32> = (0..n).map(|_| f(&mut r)).collect();
        self.w.f32_tensor(name, dims, &data);
    }

    fn vals(&mut self, name: &str, dims: &[u64], v: &[f32]) {
        self.w.f32_tensor(name, dims, v);
    }

    /// A weight matrix with GGUF dims [cols, rows]: uniform entries of standard deviation
    /// 1/√cols (a unit-RMS input gives unit-RMS outputs).
    fn mat(&mut self, name: &str, cols: usize, rows: usize) {
        self.mat_gain(name, cols, rows, 1.0);
    }

    fn mat_gain(&mut self, name: &str, cols: usize, rows: usize, gain: f32) {
        let a = gain * (3.0 / cols as f32).sqrt();
        self.tensor(name, &[cols as u64, rows as u64], move |r| a * r.f());
    }

    /// Norm weights around 1.
    fn norm(&mut self, name: &str, n: usize) {
        self.norm_gain(name, n, 1.0);
    }

    /// Norm weights around `g`.
    fn norm_gain(&mut self, name: &str, n: usize, g: f32) {
        self.tensor(name, &[n as u64], move |r| g * (1.0 + 0.25 * r.f()));
    }

    fn bias(&mut self, name: &str, n: usize) {
        self.tensor(name, &[n as u64], |r| 0.2 * r.f());
    }

    /// `token_embd.weight` (entries ±0.6: logits of a few units), `output_norm.weight`, and an
    /// untied `output.weight` when asked.
    fn embeddings(&mut self, untied: bool) {
        self.embeddings_scaled(1.0, untied.then_some(1.0));
    }

    /// Embedding entries ±0.6 × `gain`; `output.weight` entries ±0.6 × `out_gain` when untied.
    fn embeddings_scaled(&mut self, gain: f32, out_gain: Option<f32>) {
        let a = 0.6 * gain;
        let dims = [N_EMBD as u64, N_VOCAB as u64];
        self.tensor("token_embd.weight", &dims, move |r| a * r.f());
        self.norm("output_norm.weight", N_EMBD);
        if let Some(g) = out_gain {
            let a = 0.6 * g;
            self.tensor("output.weight", &dims, move |r| a * r.f());
        }
    }

    /// Separate Q, K, V and output projections of layer `i`.
    fn attn_qkvo(&mut self, i: usize, d: &Dims) {
        self.mat(&format!("blk.{i}.attn_q.weight"), N_EMBD, d.q_dim());
        self.mat(&format!("blk.{i}.attn_k.weight"), N_EMBD, d.kv_dim());
        self.mat(&format!("blk.{i}.attn_v.weight"), N_EMBD, d.kv_dim());
        self.mat(&format!("blk.{i}.attn_output.weight"), d.q_dim(), N_EMBD);
    }

    /// Gate, up and down of a gated FFN.
    fn gated_ffn(&mut self, i: usize, n_ff: usize) {
        self.mat_gain(&format!("blk.{i}.ffn_gate.weight"), N_EMBD, n_ff, 1.5);
        self.mat(&format!("blk.{i}.ffn_up.weight"), N_EMBD, n_ff);
        self.mat(&format!("blk.{i}.ffn_down.weight"), n_ff, N_EMBD);
    }
}

// ----------------------------------------------------------------------------------------------
// Vocabulary
// ----------------------------------------------------------------------------------------------

const SPECIAL: [&str; 4] = [
    "<|endoftext|>",
    "<|startoftext|>",
    "<|im_start|>",
    "<|im_end|>",
];

/// Merges over GPT-2's byte-to-unicode alphabet (`Ġ` = space); each result is a new token.
const MERGES: [&str; 60] = [
    "Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t", "Ġ w", "Ġ o", "e n",
    "Ġ c", "i t", "i s", "a n", "o r", "e s", "Ġ b", "e d", "Ġ f", "in g", "Ġ p", "o u", "Ġa n",
    "a l", "a r", "Ġt o", "Ġ m", "Ġo f", "Ġ in", "Ġ d", "Ġ h", "Ġan d", "i c", "a s", "l e",
    "Ġt h", "i on", "o m", "l l", "en t", "Ġ n", "Ġ l", "s t", "Ġ re", "v e", "Ġ e", "r o", "l y",
    "Ġb e", "Ġ g", "Ġ T", "c t", "Ġ S", "i d", "o t", "Ġ I", "u t",
];

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others to U+0100 onwards.
fn byte_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        let cp = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(cp).expect("code point");
    }
    table
}

/// (tokens, token types, merges): 4 control tokens, the 256 byte tokens in byte order, then one
/// token per merge.
fn vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = SPECIAL.iter().map(|s| s.to_string()).collect();
    let mut types = vec![3; SPECIAL.len()];
    for c in byte_to_unicode() {
        tokens.push(c.to_string());
        types.push(1);
    }
    for m in MERGES {
        let (a, b) = m.split_once(' ').expect("merge");
        assert!(
            tokens.iter().any(|t| t == a) && tokens.iter().any(|t| t == b),
            "merge `{m}`: parts must be tokens"
        );
        let t = format!("{a}{b}");
        assert!(!tokens.contains(&t), "merge `{m}` twice");
        tokens.push(t);
        types.push(1);
    }
    assert_eq!(tokens.len(), N_VOCAB);
    (
        tokens,
        types,
        MERGES.iter().map(|s| s.to_string()).collect(),
    )
}

// ----------------------------------------------------------------------------------------------
// Deterministic random numbers
// ----------------------------------------------------------------------------------------------

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn fnv1a(s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
