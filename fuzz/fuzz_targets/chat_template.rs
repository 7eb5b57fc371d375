//! Arbitrary chat templates (they come from model files) rendered with the engine's budgets:
//! fuel, recursion limit, output and item caps. `Ok` or `Err`, never a panic, an abort, a hang
//! (scripts/fuzz.sh runs this with `-timeout=5 -rss_limit_mb=2048`).
//!
//! Input: the template, then optionally `\0` and messages separated by `\0`, each a role byte
//! and its content. Without messages, the sample conversation of `ChatTemplate::check`.
#![no_main]

use inference::chat::{ChatMessage, ChatTemplate};
use libfuzzer_sys::fuzz_target;

const ROLES: &[&str] = &["system", "user", "assistant", "tool", "developer", ""];

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let source = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let Ok(t) = ChatTemplate::from_source(&source, "<s>", "</s>") else {
        return;
    };
    let messages: Vec<ChatMessage> = parts
        .map(|p| match p.split_first() {
            Some((&r, content)) => ChatMessage::new(
                ROLES[r as usize % ROLES.len()],
                String::from_utf8_lossy(content),
            ),
            None => ChatMessage::user(""),
        })
        .collect();
    if messages.is_empty() {
        if let Ok(n) = t.check() {
            assert!(n <= t.limits().max_output, "output over the cap");
        }
    } else {
        for add_generation_prompt in [false, true] {
            if let Ok(s) = t.render(&messages, add_generation_prompt) {
                assert!(s.len() <= t.limits().max_output, "output over the cap");
            }
        }
    }
});
