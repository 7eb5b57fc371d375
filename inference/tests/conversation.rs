//! The conversation engine: a session keeps its KV cache between turns and evaluates only what it
//! does not hold, with the same tokens as a fresh session given the whole history; Regenerate and
//! an edited earlier message reuse what they can; a full context is shifted (keys re-rotated, as
//! llama.cpp does) and the chat keeps answering. On the CPU here, on the GPU in `webgpu.rs`
//! (`conversation_on_the_gpu`), through the same [`run_script`].
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::chat::*;
use common::*;
use inference::chat::ChatMessage;
use inference::conversation::{messages_out_of_view, ChatPrompt};
use inference::engine::{block_on, Session};
use inference::quant::Activations;

#[test]
fn six_turns_regenerate_and_edit_equal_a_fresh_session_on_the_cpu() {
    let model = load_model("smollm2-135m-q4_1");
    let mut session = cpu_session(&model, 2048, 2, Activations::F32);
    let fresh = || cpu_session(&model, 2048, 2, Activations::F32);
    run_script(&model, &mut session, fresh, 24);
}

/// The 4-layer model mixes every quant type (K-quants included) and the 8-bit activation
/// kernels: reuse gives the fresh session's tokens there too.
#[test]
fn six_turns_with_8_bit_activations_on_every_quant_type() {
    let model = load_model("smollm2-4layer-mixed");
    let mut session = cpu_session(&model, 2048, 2, Activations::Q8);
    let fresh = || cpu_session(&model, 2048, 2, Activations::Q8);
    run_script(&model, &mut session, fresh, 16);
}

/// A 512-token context, filled by a long chat, keeps answering: the context is shifted (the
/// system prompt stays) and the turns after it evaluate only their new tokens.
#[test]
fn a_full_context_is_shifted_and_the_chat_goes_on() {
    let model = load_model("smollm2-135m-q4_1");
    let mut session = cpu_session(&model, 512, 2, Activations::F32);
    check_context_shift(&model, &mut session, true);
}

/// Layer 0's keys depend on the token and its position only: after a shift, the moved keys
/// equal (to rounding) those a fresh evaluation computes at the new positions, and the values
/// are moved exactly.
#[test]
fn shifted_keys_are_the_keys_at_the_new_positions() {
    let model = load_model("smollm2-135m-q4_1");
    let toks = model.tokenizer.encode(
        "One two three four five six seven eight nine ten eleven twelve.",
        true,
    );
    let (keep, discard) = (3, 5);
    let mut a = cpu_session(&model, 64, 1, Activations::F32);
    logits(&mut a, &toks, false);
    block_on(a.shift(keep, discard)).expect("shift");
    let mut kept = toks[..keep].to_vec();
    kept.extend_from_slice(&toks[keep + discard..]);
    let mut b = cpu_session(&model, 64, 1, Activations::F32);
    logits(&mut b, &kept, false);
    let kv = |s: &Session| {
        let c = s.backend().cpu().expect("CPU session").kv();
        let (k, v) = c.layer(0);
        let n = c.len * model.hp.kv_dim();
        (k[..n].to_vec(), v[..n].to_vec())
    };
    let ((ka, va), (kb, vb)) = (kv(&a), kv(&b));
    assert_eq!(a.len(), kept.len());
    assert_eq!(va, vb, "values moved exactly");
    let d = ka
        .iter()
        .zip(&kb)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0f32, f32::max);
    eprintln!("layer 0 keys after a shift vs at the new positions: max rel |Δ| {d:.2e}");
    assert!(
        d < 1e-4,
        "rotated keys differ from the keys at the new positions: {d}"
    );
}

#[test]
fn chat_prompt_keeps_the_system_prompt_and_counts_dropped_messages() {
    let model = load_model("smollm2-4layer-mixed");
    let sys = ChatMessage::system("You are a terse assistant.");
    let msgs = vec![
        sys.clone(),
        ChatMessage::user("Hello there"),
        ChatMessage::assistant("Hi."),
        ChatMessage::user("What is the time?"),
    ];
    let p = ChatPrompt::new(&model, &msgs).unwrap();
    let head = model.chat.render(&msgs[..1], false).unwrap();
    let head_tokens = model.tokenizer.encode(&head, true);
    assert_eq!(p.keep, head_tokens.len(), "keep = the system block");
    assert_eq!(&p.tokens[..p.keep], &head_tokens[..]);
    // No system message: the template's own head, or BOS.
    let q = ChatPrompt::new(&model, &msgs[1..]).unwrap();
    assert!(q.keep < q.tokens.len());
    // Dropping the tokens of the first user message and the reply: two messages out of view.
    let second_user = {
        let t = model.chat.render(&msgs[..3], false).unwrap();
        model.tokenizer.encode(&t, true).len()
    };
    let n = messages_out_of_view(&model, &msgs, &p.tokens, p.keep, second_user - p.keep).unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        messages_out_of_view(&model, &msgs, &p.tokens, p.keep, 1).unwrap(),
        1
    );
    assert_eq!(
        messages_out_of_view(&model, &msgs, &p.tokens, p.keep, 0).unwrap(),
        0
    );
    assert!(ChatPrompt::new(&model, &[]).is_err());
}

/// The context shift against llama.cpp's own (golden data from its KV cache after
/// `llama_memory_seq_rm` + `llama_memory_seq_add`): SmolLM2 (original RoPE pairs) and Gemma 3
/// (NeoX pairs, two RoPE bases, sliding-window layers).
#[test]
fn context_shift_matches_llama_cpp() {
    for name in ["smollm2-135m-q4_1", "gemma-3-270m-q4_k_m"] {
        let model = load_model(name);
        let mut s = cpu_session(&model, 1024, 2, Activations::F32);
        check_shift_golden(name, &mut s);
    }
}

/// A saved cache (f16, `KvSnapshot` bytes) restored into a new session answers the next turn
/// evaluating only its new tokens, with the tokens the original session gives; a snapshot of
/// another model, or damaged bytes, is refused (and the caller recomputes).
#[test]
fn a_saved_cache_answers_the_next_turn_without_recomputing() {
    use inference::engine::KvSnapshot;
    let model = load_model("smollm2-135m-q4_1");
    let mut a = cpu_session(&model, 1024, 2, Activations::F32);
    let mut msgs = vec![ChatMessage::system("You are a helpful assistant.")];
    for user in &SCRIPT[..3] {
        msgs.push(ChatMessage::user(*user));
        let p = ChatPrompt::new(&model, &msgs).unwrap();
        let g = turn(&mut a, &p, 16);
        msgs.push(ChatMessage::assistant(g.text));
    }
    let bytes = block_on(a.snapshot()).unwrap().to_bytes();
    eprintln!(
        "snapshot of {} tokens: {} bytes ({} per token)",
        a.len(),
        bytes.len(),
        bytes.len() / a.len()
    );
    let snap = KvSnapshot::from_bytes(&bytes).unwrap();
    let mut b = cpu_session(&model, 1024, 2, Activations::F32);
    b.restore(&snap).unwrap();
    assert_eq!(b.history(), a.history());
    msgs.push(ChatMessage::user(SCRIPT[3]));
    let p = ChatPrompt::new(&model, &msgs).unwrap();
    let cached = a.history().len();
    let ga = turn(&mut a, &p, 16);
    let gb = turn(&mut b, &p, 16);
    assert_eq!(gb.reused, ga.reused);
    assert!(
        gb.evaluated <= p.tokens.len() - cached + 3,
        "evaluated {}",
        gb.evaluated
    );
    assert_eq!(
        gb.tokens, ga.tokens,
        "f16 cache vs f32 cache: the same reply"
    );

    // Another model's snapshot, a context too small, damaged bytes: refused, session empty.
    let other = load_model("smollm2-4layer-mixed");
    let mut c = cpu_session(&other, 1024, 1, Activations::F32);
    assert!(c.restore(&snap).is_err());
    assert!(c.is_empty());
    let mut small = cpu_session(&model, 16, 1, Activations::F32);
    assert!(small.restore(&snap).is_err());
    for cut in [0, 7, 40, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            KvSnapshot::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut evil = bytes.clone();
    evil[24..28].copy_from_slice(&u32::MAX.to_le_bytes()); // n_layer
    assert!(KvSnapshot::from_bytes(&evil).is_err());
}
