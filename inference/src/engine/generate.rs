//! Generation over a [`Session`], for every backend: the only generation loop of the code base
//! ([`Session::generate`]); [`Generator`] is its step.

use serde::{Deserialize, Serialize};

use super::{now, Session, TurnCounts};
use crate::backend::{Output, Want};
use crate::error::{Error, Result};
use crate::grammar::Matcher;
use crate::sampler::{apply_mask, Sampler, SamplerParams};

#[derive(Clone, Debug)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampler: SamplerParams,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Context shift: when the cache is full, keep this many leading tokens (the system prompt,
    /// the template's head) and drop the oldest half of the rest. `None`: stop with
    /// [`StopReason::Context`] instead, and refuse a prompt that does not fit.
    pub keep: Option<usize>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            sampler: SamplerParams::default(),
            ignore_eos: false,
            keep: None,
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// An end-of-generation token.
    Eos,
    /// `max_tokens` were generated.
    #[default]
    Length,
    /// The caller stopped it (the user pressed Stop).
    Stopped,
    /// The context is full and shifting is off.
    Context,
    /// The grammar of a constrained generation is complete and nothing more can follow.
    Grammar,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Length => "length",
            Self::Stopped => "stopped",
            Self::Context => "context",
            Self::Grammar => "grammar",
        }
    }
}

/// One generated reply and what it cost.
#[derive(Clone, Debug, Default)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub stop: StopReason,
    /// Tokens of the whole prompt (e.g. the templated conversation).
    pub prompt_tokens: usize,
    /// Of those, cache positions reused from earlier turns ...
    pub reused: usize,
    /// ... and tokens evaluated for this reply.
    pub evaluated: usize,
    /// Tokens shifted out of the cache during this reply (prompt and generation).
    pub shifted: usize,
    /// Tokens of the conversation no longer in the model's view after this reply.
    pub dropped: usize,
    /// Time to evaluate the prompt = time to the first token.
    pub prefill_s: f64,
    /// Engine time for the tokens after the first (not the time the sink took).
    pub decode_s: f64,
}

impl Generation {
    /// Prompt tokens evaluated per second.
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.evaluated, self.prefill_s)
    }
    /// Decode rate: tokens after the first (which comes from the prompt's logits) per second.
    pub fn decode_tok_s(&self) -> f64 {
        rate(self.tokens.len().saturating_sub(1), self.decode_s)
    }
}

fn rate(n: usize, s: f64) -> f64 {
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// Where generated text goes: each token's piece (whole UTF-8 characters only), then any text
/// held back at the end with `id` `None`. Returns `false` to stop. A plain closure is one; the
/// browser's worker yields to its event loop in here.
#[allow(async_fn_in_trait)]
pub trait TokenSink {
    async fn piece(&mut self, id: Option<u32>, text: &str) -> bool;
}

impl<F: FnMut(Option<u32>, &str) -> bool> TokenSink for F {
    async fn piece(&mut self, id: Option<u32>, text: &str) -> bool {
        self(id, text)
    }
}

/// Token-by-token generation over a [`Session`], after its prompt was evaluated.
pub struct Generator<'s> {
    session: &'s mut Session,
    sampler: Sampler,
    /// Greedy without penalties: the backend answers the argmax (the GPU reads back 4 bytes).
    want: Want,
    /// What the backend answered for the last evaluated token, not used yet.
    ready: Option<Output>,
    /// The last token chosen, not evaluated yet (its keys and values are not in the cache).
    pending: Option<u32>,
    /// Undecoded bytes of a UTF-8 character split across tokens.
    utf8: Vec<u8>,
    produced: usize,
    params: GenerateParams,
    stop: Option<StopReason>,
    shifted: usize,
    /// Structured output: only tokens this grammar allows are sampled.
    grammar: Option<Matcher>,
}

impl Session {
    /// Evaluate `prompt` (token ids, BOS included if wanted), reusing what the cache holds, and
    /// return a [`Generator`] positioned at the first new token.
    pub async fn start<'s>(
        &'s mut self,
        prompt: &[u32],
        params: &GenerateParams,
    ) -> Result<(Generator<'s>, TurnCounts)> {
        self.start_constrained(prompt, params, None).await
    }

    /// [`Session::start`] with an optional grammar constraint (a [`Matcher`] at its start).
    pub async fn start_constrained<'s>(
        &'s mut self,
        prompt: &[u32],
        params: &GenerateParams,
        grammar: Option<Matcher>,
    ) -> Result<(Generator<'s>, TurnCounts)> {
        let sampler = Sampler::new(params.sampler.clone());
        let p = &sampler.params;
        // A grammar masks the logits, so the backend's argmax cannot be used.
        let plain_greedy =
            sampler.is_greedy() && (p.repeat_penalty == 1.0 || p.repeat_penalty <= 0.0);
        let want = if plain_greedy && grammar.is_none() {
            Want::Argmax
        } else {
            Want::Last
        };
        let (out, counts) = self.prefill(prompt, params.keep, want).await?;
        Ok((
            Generator {
                session: self,
                sampler,
                want,
                ready: Some(out),
                pending: None,
                utf8: Vec::new(),
                produced: 0,
                params: params.clone(),
                stop: None,
                shifted: counts.shifted,
                grammar,
            },
            counts,
        ))
    }

    /// Generate a reply after `prompt`, streaming it to `sink`: the one generation loop, for
    /// every backend.
    pub async fn generate(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        sink: &mut impl TokenSink,
    ) -> Result<Generation> {
        self.generate_constrained(prompt, params, None, sink).await
    }

    /// [`Session::generate`] constrained by a grammar (structured output): every token is one
    /// the grammar allows, end-of-generation only where it may end, and generation stops with
    /// [`StopReason::Grammar`] once nothing more can follow.
    pub async fn generate_constrained(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        grammar: Option<Matcher>,
        sink: &mut impl TokenSink,
    ) -> Result<Generation> {
        let t0 = now();
        let (mut gen, counts) = self.start_constrained(prompt, params, grammar).await?;
        let mut g = Generation {
            prompt_tokens: prompt.len(),
            reused: counts.reused,
            evaluated: counts.evaluated,
            prefill_s: now() - t0,
            ..Default::default()
        };
        loop {
            let t = now();
            let next = gen.next_token().await?;
            g.decode_s += now() - t;
            let Some((id, piece)) = next else { break };
            g.tokens.push(id);
            g.text.push_str(&piece);
            if !sink.piece(Some(id), &piece).await {
                gen.stop();
            }
        }
        let rest = gen.flush();
        if !rest.is_empty() {
            g.text.push_str(&rest);
            sink.piece(None, &rest).await;
        }
        g.stop = gen.stop.unwrap_or_default();
        g.shifted = gen.shifted;
        g.dropped = self.dropped;
        Ok(g)
    }
}

/// Sample under a grammar the way llama.cpp does: sample from all logits first and keep the
/// token if the grammar allows it (one walk of its bytes); only otherwise mask the whole
/// vocabulary and sample again. Greedy picks exactly the masked argmax either way; sampling
/// picks from the allowed tokens in proportion to their probabilities.
fn sample_constrained(
    sampler: &mut Sampler,
    g: &mut Matcher,
    mut logits: Vec<f32>,
    history: &[u32],
) -> Result<u32> {
    let first = sampler.sample(&mut logits.clone(), history);
    if g.allows(first) {
        return Ok(first);
    }
    let mask = g.allowed();
    if mask.iter().all(|&w| w == 0) {
        return Err(Error::Grammar(
            "no token of the vocabulary can continue the grammar here".into(),
        ));
    }
    apply_mask(&mut logits, &mask);
    Ok(sampler.sample(&mut logits, history))
}

impl Generator<'_> {
    /// The next token and its text piece, or `None` when generation is over.
    pub async fn next_token(&mut self) -> Result<Option<(u32, String)>> {
        if self.stop.is_some() {
            return Ok(None);
        }
        if self.grammar.as_ref().is_some_and(Matcher::is_done) {
            self.stop = Some(StopReason::Grammar);
            return Ok(None);
        }
        if self.produced >= self.params.max_tokens {
            self.stop = Some(StopReason::Length);
            return Ok(None);
        }
        let out = match (self.ready.take(), self.pending.take()) {
            (Some(out), _) => out,
            (None, Some(prev)) => {
                let s = &mut *self.session;
                if s.len() >= s.n_ctx() {
                    match self.params.keep {
                        Some(keep) => {
                            let keep = if s.dropped > 0 {
                                s.keep
                            } else {
                                keep.min(s.n_ctx() / 2)
                            };
                            let discard = ((s.len() - keep.min(s.len())) / 2).max(1);
                            if keep + discard > s.len() {
                                self.stop = Some(StopReason::Context);
                                return Ok(None);
                            }
                            s.shift(keep, discard).await?;
                            self.shifted += discard;
                        }
                        None => {
                            self.stop = Some(StopReason::Context);
                            return Ok(None);
                        }
                    }
                }
                s.eval(&[prev], self.want).await?
            }
            (None, None) => {
                self.stop = Some(StopReason::Length);
                return Ok(None);
            }
        };
        let next = match out {
            Output::Token(t) => t,
            Output::Logits(mut l) => match &mut self.grammar {
                None => self.sampler.sample(&mut l, &self.session.history),
                Some(g) => sample_constrained(&mut self.sampler, g, l, &self.session.history)?,
            },
            Output::Nothing => return Err(Error::Invalid("no logits".into())),
        };
        let tok = &self.session.model.tokenizer;
        // With a grammar, end-of-generation was allowed only where the grammar may end.
        if tok.is_eog(next) && (!self.params.ignore_eos || self.grammar.is_some()) {
            self.stop = Some(StopReason::Eos);
            return Ok(None);
        }
        if let Some(g) = &mut self.grammar {
            g.accept_token(next)?;
        }
        self.pending = Some(next);
        self.produced += 1;
        self.utf8.extend_from_slice(tok.output_bytes(next));
        Ok(Some((next, crate::tokenizer::take_utf8(&mut self.utf8))))
    }

    /// Stop early (the user pressed Stop).
    pub fn stop(&mut self) {
        self.stop.get_or_insert(StopReason::Stopped);
    }

    /// Why generation ended, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Bytes held back (an incomplete UTF-8 character), as text.
    pub fn flush(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.utf8).into_owned();
        self.utf8.clear();
        s
    }
}
