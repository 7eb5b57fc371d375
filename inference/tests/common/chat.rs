//! The scripted conversations of `conversation.rs` (CPU) and `webgpu.rs` (GPU).

use super::logits;
use inference::chat::ChatMessage;
use inference::conversation::{messages_out_of_view, ChatPrompt};
use inference::engine::{block_on, GenerateParams, Generation, Session, StopReason};
use inference::model::Model;
use inference::sampler::argmax;

/// The user side of the scripted conversation.
pub const SCRIPT: [&str; 6] = [
    "Hi! What is the capital of France?",
    "And what is it famous for?",
    "Write a haiku about the sea.",
    "What is 12 times 7?",
    "Name three primary colors.",
    "Thank you, goodbye!",
];

/// Greedy generation of up to `n` tokens with the context shift on.
pub fn greedy(n: usize, keep: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        keep: Some(keep),
        ..Default::default()
    }
}

pub fn turn(s: &mut Session, prompt: &ChatPrompt, n: usize) -> Generation {
    let mut sink = |_: Option<u32>, _: &str| true;
    block_on(s.generate(&prompt.tokens, &greedy(n, prompt.keep), &mut sink)).expect("turn")
}

/// The 6-turn scripted chat on `session`, each turn checked against `fresh()` given the whole
/// history: the same tokens, and only the new tokens evaluated; then Regenerate (one token
/// evaluated, the same reply) and an edit of turn 2 (the prefix before it reused).
pub fn run_script(
    model: &Model,
    session: &mut Session,
    fresh: impl Fn() -> Session,
    max_tokens: usize,
) {
    let mut msgs = vec![ChatMessage::system("You are a helpful assistant.")];
    let mut cached = 0; // tokens the session holds after the previous turn
    for (i, user) in SCRIPT.iter().enumerate() {
        msgs.push(ChatMessage::user(*user));
        let prompt = ChatPrompt::new(model, &msgs).expect("prompt");
        let g = turn(session, &prompt, max_tokens);
        let want = turn(&mut fresh(), &prompt, max_tokens);
        assert_eq!(g.tokens, want.tokens, "turn {i}: reuse vs fresh session");
        assert_eq!(g.reused + g.evaluated, prompt.tokens.len(), "turn {i}");
        // The new turn's tokens: the user message, its template and the previous reply's end
        // (the end-of-turn token that was not evaluated when the reply stopped).
        let new = prompt.tokens.len() - cached;
        eprintln!(
            "turn {i}: prompt {} tokens, reused {}, evaluated {} (new since the last turn: {new}), reply {} tokens, first token after {:.0} ms",
            prompt.tokens.len(),
            g.reused,
            g.evaluated,
            g.tokens.len(),
            g.prefill_s * 1e3
        );
        if i > 0 {
            assert!(
                g.evaluated <= new + 3,
                "turn {i}: evaluated {} tokens, the turn has {new} new ones",
                g.evaluated
            );
        }
        cached = session.history().len();
        msgs.push(ChatMessage::assistant(g.text.clone()));
    }

    // Regenerate: the last reply goes, the same prompt comes back.
    let last = msgs.pop().expect("reply");
    let prompt = ChatPrompt::new(model, &msgs).expect("prompt");
    let g = turn(session, &prompt, max_tokens);
    assert_eq!(
        g.evaluated, 1,
        "Regenerate evaluates the prompt's last token only"
    );
    assert_eq!(
        g.text, last.content,
        "greedy Regenerate gives the same reply"
    );

    // Edit turn 2 (messages: system, user 1, reply 1, user 2 …): drop it and what follows.
    msgs.truncate(3);
    let before = ChatPrompt::new(model, &msgs[..3]).expect("prompt");
    msgs.push(ChatMessage::user("Actually, what is the capital of Italy?"));
    let prompt = ChatPrompt::new(model, &msgs).expect("prompt");
    let g = turn(session, &prompt, max_tokens);
    let want = turn(&mut fresh(), &prompt, max_tokens);
    assert_eq!(g.tokens, want.tokens, "edited turn 2: reuse vs fresh");
    let shared = inference::engine::common_prefix(&before.tokens, &prompt.tokens);
    assert!(
        g.reused >= shared.saturating_sub(3),
        "edit: reused {} of the {shared} tokens before the edit",
        g.reused
    );
    eprintln!(
        "edit of turn 2: reused {}, evaluated {}",
        g.reused, g.evaluated
    );
}

/// Chat on a small context until it has been shifted at least twice: every turn answers (never
/// "context full"), the system prompt stays, the turns after a shift evaluate only their new
/// tokens (`exact`; otherwise also, at most, the previous reply again: a test model's gibberish
/// reply may tokenize differently from the ids it was generated as), and the messages out of the
/// model's view are counted. (What a shift computes is checked against llama.cpp by
/// [`check_shift_golden`].)
pub fn check_context_shift(model: &Model, session: &mut Session, exact: bool) {
    let n_ctx = session.n_ctx();
    let mut msgs = vec![ChatMessage::system("You are a helpful assistant.")];
    let mut shifts = 0;
    let mut turns = 0;
    let mut cached = 0;
    let mut last_reply = 0;
    while shifts < 2 {
        turns += 1;
        assert!(turns <= 40, "the context was never shifted");
        msgs.push(ChatMessage::user(format!(
            "{} Please answer in detail, turn {turns}.",
            SCRIPT[turns % SCRIPT.len()]
        )));
        let prompt = ChatPrompt::new(model, &msgs).expect("prompt");
        let before_dropped = session.dropped();
        let g = turn(session, &prompt, 48);
        assert!(!g.tokens.is_empty(), "turn {turns}: no reply");
        assert_ne!(g.stop, StopReason::Context, "turn {turns}: context full");
        assert!(session.len() <= n_ctx);
        if before_dropped > 0 {
            // After a shift the session appends the new turn to what its cache holds.
            let new = prompt.tokens.len() - cached;
            let slack = if exact { 3 } else { 3 + last_reply };
            assert!(
                g.evaluated <= new + slack,
                "turn {turns} after a shift: evaluated {} of {new} new tokens",
                g.evaluated
            );
        }
        last_reply = g.tokens.len();
        if g.shifted > 0 {
            shifts += 1;
            let out = messages_out_of_view(
                model,
                &msgs,
                &prompt.tokens,
                session.keep(),
                session.dropped(),
            )
            .expect("out of view");
            eprintln!(
                "turn {turns}: shifted {} tokens; {} dropped in all, {out} message(s) out of view; keep {}",
                g.shifted,
                session.dropped(),
                session.keep()
            );
            assert!(out > 0);
            assert_eq!(session.keep(), prompt.keep, "the system prompt is kept");
        }
        cached = session.history().len();
        msgs.push(ChatMessage::assistant(g.text.clone()));
    }
}

/// `inference/tests/data/context-shift-<name>.json` (scripts/make-context-shift-golden.sh): what
/// llama.cpp computes after its context shift. On `session` (a fresh one, its cache large
/// enough): evaluate the same tokens, shift the same way, then check the next positions like
/// the golden README's rules: top-1 and top-20 (within 1.5) at the first position, and teacher
/// forcing over llama.cpp's 24-token greedy continuation wherever its margin is >= 1.0. The
/// unshifted continuation is reported (and, where llama.cpp's own two differ in top-1, must not
/// be what we match).
pub fn check_shift_golden(name: &str, session: &mut Session) {
    let path = format!(
        "{}/tests/data/context-shift-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).expect("JSON");
    let ids = |v: &serde_json::Value| super::ids(v);
    let tokens = ids(&g["tokens"]);
    let keep = g["keep"].as_u64().expect("keep") as usize;
    let discard = g["discard"].as_u64().expect("discard") as usize;
    let sh = &g["shifted"];
    logits(session, &tokens, false);
    block_on(session.shift(keep, discard)).expect("shift");
    assert_eq!(session.len(), tokens.len() - discard);
    let first = sh["first"].as_u64().expect("first") as u32;
    let l = logits(session, &[first], false);
    let top20: Vec<(usize, f32)> = sh["top20"]
        .as_array()
        .expect("top20")
        .iter()
        .map(|e| {
            (
                e[0].as_u64().unwrap() as usize,
                e[1].as_f64().unwrap() as f32,
            )
        })
        .collect();
    let d = top20
        .iter()
        .map(|&(i, v)| (l[i] - v).abs())
        .fold(0f32, f32::max);
    let un = &g["unshifted"];
    let d_un = un["top20"]
        .as_array()
        .expect("top20")
        .iter()
        .map(|e| (l[e[0].as_u64().unwrap() as usize] - e[1].as_f64().unwrap() as f32).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "{name}: after the shift, top-20 max |Δ| vs llama.cpp {d:.3} (vs llama.cpp without the shift {d_un:.3})"
    );
    assert_eq!(
        argmax(&l) as u64,
        sh["argmax"].as_u64().unwrap(),
        "{name}: top-1 after the shift"
    );
    assert!(d <= 1.5, "{name}: top-20 max |Δ| {d} after the shift");
    if sh["argmax"] != un["argmax"] {
        assert_ne!(argmax(&l) as u64, un["argmax"].as_u64().unwrap());
    }
    // Teacher forcing over the continuation.
    let greedy = ids(&sh["greedy"]);
    let margins: Vec<f64> = sh["margins"]
        .as_array()
        .expect("margins")
        .iter()
        .map(|m| m.as_f64().unwrap())
        .collect();
    let mut l = l;
    let mut forced = 0;
    for (i, (&want, &m)) in greedy.iter().zip(&margins).enumerate() {
        if m >= 1.0 {
            assert_eq!(
                argmax(&l),
                want,
                "{name}: step {i} after the shift (margin {m:.2})"
            );
            forced += 1;
        }
        if i + 1 < greedy.len() {
            l = logits(session, &[want], false);
        }
    }
    eprintln!("{name}: {forced} confident positions after the shift agree with llama.cpp");
}
