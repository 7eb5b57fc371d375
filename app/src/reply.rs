//! What the UI shows under a reply: its speed, what the cache saved, why it stopped.

use serde::{Deserialize, Serialize};

/// Speed figures for one reply (saved with the conversation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplyStats {
    pub tokens: u32,
    /// The whole templated conversation ...
    pub prompt_tokens: u32,
    /// ... of which these were evaluated for this reply (the rest was in the cache). 0 in
    /// conversations saved before the cache was kept between replies.
    #[serde(default)]
    pub evaluated_tokens: u32,
    /// Time to the first token.
    #[serde(default)]
    pub ttft_ms: f64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub stop: String,
    /// Earlier messages (partly) out of the model's view: the context was shifted.
    pub trimmed: u32,
    /// "webgpu" or "cpu".
    pub backend: String,
}

impl ReplyStats {
    /// "42 tokens · 15.2 tok/s · prompt 812 tokens, 23 new at 60 tok/s · first token 0.4 s · CPU"
    /// and, where it applies, why it stopped and what left the model's view.
    pub fn summary(&self) -> String {
        let prompt = if self.evaluated_tokens > 0 && self.evaluated_tokens < self.prompt_tokens {
            format!(
                "prompt {} tokens, {} new at {:.0} tok/s",
                self.prompt_tokens, self.evaluated_tokens, self.prefill_tok_s
            )
        } else {
            format!(
                "prompt {} tokens at {:.0} tok/s",
                self.prompt_tokens, self.prefill_tok_s
            )
        };
        let first = if self.ttft_ms > 0.0 {
            format!(" · first token {:.1} s", self.ttft_ms / 1e3)
        } else {
            String::new()
        };
        let stop = match self.stop.as_str() {
            "stopped" => " · stopped",
            "length" => " · hit max tokens",
            "context" => " · context full: raise the context size in Settings or start a new chat",
            _ => "",
        };
        let trimmed = match self.trimmed {
            0 => String::new(),
            1 => " · 1 earlier message is out of the model's view (context full)".to_owned(),
            n => format!(" · {n} earlier messages are out of the model's view (context full)"),
        };
        format!(
            "{} tokens · {:.1} tok/s · {prompt}{first} · {}{stop}{trimmed}",
            self.tokens,
            self.decode_tok_s,
            if self.backend == "webgpu" {
                "WebGPU"
            } else {
                "CPU"
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_says_what_the_cache_saved_and_what_was_dropped() {
        let mut s = ReplyStats {
            tokens: 42,
            prompt_tokens: 812,
            evaluated_tokens: 23,
            ttft_ms: 412.0,
            prefill_tok_s: 60.2,
            decode_tok_s: 15.24,
            stop: "eos".into(),
            trimmed: 0,
            backend: "cpu".into(),
        };
        assert_eq!(
            s.summary(),
            "42 tokens · 15.2 tok/s · prompt 812 tokens, 23 new at 60 tok/s · first token 0.4 s · CPU"
        );
        s.evaluated_tokens = 812;
        s.trimmed = 2;
        s.backend = "webgpu".into();
        assert!(s.summary().contains("prompt 812 tokens at 60 tok/s"));
        assert!(s
            .summary()
            .ends_with("WebGPU · 2 earlier messages are out of the model's view (context full)"));
        // Saved before the counts existed.
        let old: ReplyStats = serde_json::from_str(
            r#"{"tokens":3,"prompt_tokens":9,"prefill_tok_s":1,"decode_tok_s":2,"stop":"eos","trimmed":0,"backend":"cpu"}"#,
        )
        .unwrap();
        assert!(old
            .summary()
            .starts_with("3 tokens · 2.0 tok/s · prompt 9 tokens at 1 tok/s · CPU"));
    }
}
