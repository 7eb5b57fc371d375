//! `chord bench`: prefill and decode speed (median of `--runs`) through the engine's generation
//! loop, on the CPU or the GPU, the weight bandwidth decoding achieves, and the machine's memory
//! read bandwidth for reference.

use std::time::Instant;

use inference::engine::{block_on, GenerateParams, Session, SessionOptions};
use inference::model::Model;
use inference::quant::Activations;
use serde_json::json;

use crate::cli::{activations, backend_pref, load, threads, Args, CliResult};

/// `chord bench`: prefill and decode speed (median of `--runs`), the weight bandwidth decoding
/// achieves, and the machine's memory read bandwidth for reference.
pub fn bench(raw: &[String]) -> CliResult<()> {
    let a = Args::parse(
        raw,
        &[
            "--model",
            "--threads",
            "--prompt-tokens",
            "--gen-tokens",
            "--runs",
            "--kernels",
            "--activations",
            "--backend",
            "--profile",
            "--json",
        ],
    )?;
    backend_pref(&a)?;
    let threads = threads(&a)?;
    let act = activations(&a, Activations::Q8)?;
    let n_prompt: usize = a.num("--prompt-tokens", 64)?;
    let n_gen: usize = a.num("--gen-tokens", 64)?;
    let runs: usize = a.num("--runs", 5)?;
    if n_prompt == 0 || runs == 0 {
        return Err("`--prompt-tokens` and `--runs` must be at least 1".into());
    }
    match a.get("--kernels").unwrap_or("simd") {
        "simd" => inference::quant::set_simd(true),
        "scalar" => inference::quant::set_simd(false),
        isa if inference::quant::q8_isas().contains(&isa) => inference::quant::set_q8_isa(isa),
        other => {
            return Err(format!(
                "unknown kernels `{other}` (simd, scalar, or an 8-bit family of this CPU: {})",
                inference::quant::q8_isas().join(", ")
            ))
        }
    }
    let (loaded, load_s) = load(&a, true)?;
    let model = &*loaded.model;
    let prompt = bench_prompt(model, n_prompt);
    let decode_bytes = decode_weight_bytes(model);
    let opts = SessionOptions {
        n_ctx: n_prompt + n_gen,
        threads,
        activations: act,
    };
    let mut session = Session::new(&loaded, &opts).map_err(|e| e.to_string())?;
    let setup = BenchSetup {
        prompt: &prompt,
        n_gen,
    };
    setup.run(&mut session)?; // warm-up: page in the weights, grow the buffers, pipelines
    let mut r = Runs::default();
    for _ in 0..runs {
        r.push(setup.run(&mut session)?);
    }
    #[cfg(feature = "webgpu")]
    if session.backend().gpu().is_some() {
        let b = GpuReport {
            model,
            adapter: crate::cli::adapter(&loaded, threads),
            n_prompt,
            n_gen,
            runs,
            decode_bytes,
            load_s,
            json: a.flag("--json"),
            profile: a.flag("--profile"),
        };
        return b.print(&setup, &mut session, &r);
    }
    let Runs {
        prefill,
        decode,
        decode_cpu,
        ..
    } = r;
    let (p_med, d_med) = (median(&prefill), median(&decode));
    let cpu_med = median(&decode_cpu);
    let weight_gbs = decode_bytes as f64 * d_med / 1e9;
    let mem1 = read_bandwidth(1);
    let mem_n = if threads > 1 {
        read_bandwidth(threads)
    } else {
        mem1
    };
    let kernels = match (act, inference::quant::q8_isa()) {
        (Activations::Q8, isa) if !isa.is_empty() => {
            format!("{} (8-bit: {isa})", inference::quant::kernels())
        }
        _ => inference::quant::kernels().to_string(),
    };
    if a.flag("--json") {
        let out = json!({
            "model": model.name,
            "threads": threads,
            "kernels": kernels,
            "activations": act.name(),
            "load_s": load_s,
            "prompt_tokens": n_prompt,
            "gen_tokens": n_gen,
            "runs": runs,
            "prefill_tok_s": p_med,
            "decode_tok_s": d_med,
            "prefill_tok_s_all": prefill,
            "decode_tok_s_all": decode,
            "decode_tok_per_cpu_s": cpu_med,
            "decode_weight_bytes": decode_bytes,
            "decode_weight_gb_s": weight_gbs,
            "memory_read_gb_s_1_thread": mem1,
            "memory_read_gb_s": mem_n,
        });
        println!("{out}");
    } else {
        println!(
            "{}: {threads} thread{}, {kernels} kernels, {} activations, median of {runs} runs",
            model.name,
            if threads == 1 { "" } else { "s" },
            act.name()
        );
        println!(
            "  prefill {n_prompt} tokens: {p_med:8.1} tok/s   (runs: {})",
            fmt_list(&prefill)
        );
        println!(
            "  decode  {n_gen} tokens: {d_med:8.1} tok/s   (runs: {})",
            fmt_list(&decode)
        );
        println!(
            "  decode per CPU-second of this process: {cpu_med:8.1} tok/s   (estimate for an idle \
             machine at 1 thread; includes pool spinning)"
        );
        println!(
            "  decode reads {:.1} MB of weights per token: {weight_gbs:.2} GB/s",
            decode_bytes as f64 / 1e6
        );
        println!(
            "  memory read bandwidth of this machine: {mem1:.2} GB/s (1 thread), {mem_n:.2} GB/s \
             ({threads} threads)"
        );
    }
    Ok(())
}

/// A prompt of exactly `n` real tokens: ordinary text, repeated as needed.
fn bench_prompt(model: &Model, n: usize) -> Vec<u32> {
    let text = "Once upon a time, in a quiet village by the sea, there lived an old fisherman who \
                told stories to anyone who would listen. ";
    let mut prompt = model.tokenizer.encode(text, true);
    while prompt.len() < n {
        prompt.extend(model.tokenizer.encode(text, false));
    }
    prompt.truncate(n);
    prompt
}

/// Bytes one decode step reads: every layer matrix plus the lm head (embeddings: one row).
/// Computed from the shapes, so it holds when the matrices went to a GPU.
fn decode_weight_bytes(model: &Model) -> usize {
    let w = &model.weights;
    let bytes = |m: &inference::model::weights::QTensor| {
        m.rows * m.cols / m.ty.block_size() * m.ty.type_size()
    };
    w.layers
        .iter()
        .flat_map(|l| l.matrices())
        .map(bytes)
        .sum::<usize>()
        + bytes(w.lm_head())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One timed run: prefill `prompt`, then `n_gen` greedy tokens, through the engine's own
/// generation loop (the tokens are the argmax, read back as 4 bytes on the GPU).
struct BenchSetup<'a> {
    prompt: &'a [u32],
    n_gen: usize,
}

/// One run's figures.
struct Run {
    prefill_tok_s: f64,
    decode_tok_s: f64,
    decode_tok_per_cpu_s: f64,
    /// GPU ms per decode token and of the prompt (timestamp queries, where the adapter has them).
    gpu_ms: Option<f64>,
    gpu_prefill_ms: Option<f64>,
}

#[derive(Default)]
struct Runs {
    prefill: Vec<f64>,
    decode: Vec<f64>,
    decode_cpu: Vec<f64>,
    gpu_tok: Vec<f64>,
    gpu_pre: Vec<f64>,
}

impl Runs {
    fn push(&mut self, r: Run) {
        self.prefill.push(r.prefill_tok_s);
        self.decode.push(r.decode_tok_s);
        self.decode_cpu.push(r.decode_tok_per_cpu_s);
        self.gpu_tok.extend(r.gpu_ms);
        self.gpu_pre.extend(r.gpu_prefill_ms);
    }
}

impl BenchSetup<'_> {
    fn run(&self, s: &mut Session) -> CliResult<Run> {
        s.reset();
        #[cfg(feature = "webgpu")]
        if let Some(g) = s.backend_mut().gpu_mut() {
            g.reset_timers();
        }
        let params = GenerateParams {
            max_tokens: self.n_gen + 1,
            ignore_eos: true,
            ..Default::default()
        };
        let mut cpu_first = None;
        let mut sink = |_: Option<u32>, _: &str| {
            cpu_first.get_or_insert_with(cpu_seconds);
            true
        };
        let g = block_on(s.generate(self.prompt, &params, &mut sink)).map_err(|e| e.to_string())?;
        let cpu = cpu_seconds() - cpu_first.unwrap_or(0.0);
        #[cfg(feature = "webgpu")]
        let (gpu_ms, gpu_prefill_ms) = s
            .backend()
            .gpu()
            .map(|g| {
                let st = g.stats();
                (st.gpu_ms_per_token, st.gpu_prefill_ms)
            })
            .unwrap_or_default();
        #[cfg(not(feature = "webgpu"))]
        let (gpu_ms, gpu_prefill_ms) = (None, None);
        Ok(Run {
            prefill_tok_s: self.prompt.len() as f64 / g.prefill_s.max(1e-12),
            decode_tok_s: self.n_gen as f64 / g.decode_s.max(1e-12),
            decode_tok_per_cpu_s: self.n_gen as f64 / cpu.max(1e-12),
            gpu_ms,
            gpu_prefill_ms,
        })
    }
}

/// What `chord bench --backend webgpu` reports.
#[cfg(feature = "webgpu")]
struct GpuReport<'a> {
    model: &'a Model,
    adapter: String,
    n_prompt: usize,
    n_gen: usize,
    runs: usize,
    decode_bytes: usize,
    load_s: f64,
    json: bool,
    /// Also time every dispatch of one more run and print GPU time per kind of op.
    profile: bool,
}

/// `chord bench --backend webgpu`: prefill and decode tok/s as the app sees them (each decode
/// step reads its token back before the next is sent) and, where the adapter has timestamp
/// queries, the GPU's own time per token, so host and sync overhead show as the difference.
#[cfg(feature = "webgpu")]
impl GpuReport<'_> {
    fn print(&self, setup: &BenchSetup, session: &mut Session, r: &Runs) -> CliResult<()> {
        let b = self;
        let n_prompt = b.n_prompt;
        let (prefill, decode, gpu_tok, gpu_pre) = (
            &r.prefill[..],
            &r.decode[..],
            &r.gpu_tok[..],
            &r.gpu_pre[..],
        );
        let (p_med, d_med) = (median(prefill), median(decode));
        let gpu_ms = (!gpu_tok.is_empty()).then(|| median(gpu_tok));
        let gpu_pre_ms = (!gpu_pre.is_empty()).then(|| median(gpu_pre));
        let gb = b.decode_bytes as f64 / 1e9;
        let st = match session.backend().gpu() {
            Some(g) => g.stats(),
            None => return Err("internal error: not a GPU session".into()),
        };
        let profiled = session
            .backend_mut()
            .gpu_mut()
            .is_some_and(|g| g.set_profile(true));
        let profile = if b.profile && profiled {
            setup.run(session)?;
            session
                .backend()
                .gpu()
                .map(|g| g.profile())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if b.json {
            let out = json!({
                "model": b.model.name,
                "backend": "webgpu",
                "adapter": b.adapter,
                "load_s": b.load_s,
                "prompt_tokens": b.n_prompt,
                "gen_tokens": b.n_gen,
                "runs": b.runs,
                "prefill_tok_s": p_med,
                "decode_tok_s": d_med,
                "prefill_tok_s_all": prefill,
                "decode_tok_s_all": decode,
                "decode_ms_per_token": 1e3 / d_med,
                "gpu_ms_per_token": gpu_ms,
                "gpu_prefill_ms": gpu_pre_ms,
                "decode_weight_bytes": b.decode_bytes,
                "decode_weight_gb_s": gb * d_med,
                "gpu_weight_gb_s": gpu_ms.map(|ms| gb / (ms / 1e3)),
                "dispatches_per_token": st.dispatches_per_token,
                "submits_per_token": st.submits_per_token,
                "readback_bytes_per_token": st.readback_bytes_per_token,
                "buffer_bytes": st.buffer_bytes,
                "profile": profile
                    .iter()
                    .map(|(what, ms, n, gb_s)| {
                        json!({"op": what, "ms_per_token": ms, "dispatches": n, "weight_gb_s": gb_s})
                    })
                    .collect::<Vec<_>>(),
            });
            println!("{out}");
            return Ok(());
        }
        println!(
            "{}: webgpu on {}, median of {} runs",
            b.model.name, b.adapter, b.runs
        );
        println!(
            "  prefill {n_prompt} tokens: {p_med:8.1} tok/s   (runs: {}){}",
            fmt_list(prefill),
            gpu_pre_ms.map_or(String::new(), |ms| format!("; GPU time {ms:.2} ms"))
        );
        println!(
            "  decode  {} tokens: {d_med:8.1} tok/s   (runs: {}) = {:.2} ms per token",
            b.n_gen,
            fmt_list(decode),
            1e3 / d_med
        );
        match gpu_ms {
            Some(ms) => println!(
                "  GPU time per decode token: {ms:.3} ms ({:.1} GB/s of weights; the rest of each \
                 step is submit, readback and host)",
                gb / (ms / 1e3)
            ),
            None => {
                println!("  GPU time per token: not available (adapter has no timestamp queries)")
            }
        }
        println!(
            "  decode reads {:.1} MB of weights per token: {:.2} GB/s; {} dispatches, {} submit and \
             {} bytes read back per token",
            b.decode_bytes as f64 / 1e6,
            gb * d_med,
            st.dispatches_per_token,
            st.submits_per_token,
            st.readback_bytes_per_token
        );
        if b.profile && profile.is_empty() {
            println!("  profile: not available (adapter cannot write timestamps inside a pass)");
        } else if !profile.is_empty() {
            let total: f64 = profile.iter().map(|p| p.1).sum();
            println!(
                "  GPU time per decode token by op (one more run, every dispatch timed): {total:.3} ms"
            );
            for (what, ms, n, gb_s) in &profile {
                let rate = if *gb_s > 0.0 {
                    format!("  {gb_s:7.1} GB/s of weights")
                } else {
                    String::new()
                };
                println!(
                    "    {what:<17} {ms:8.3} ms  {:5.1} %  {n:6.1} dispatches  {:7.1} us each{rate}",
                    100.0 * ms / total,
                    1e3 * ms / n.max(1e-9)
                );
            }
        }
        Ok(())
    }
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (0 where unavailable).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Memory read bandwidth in GB/s: `threads` threads sum disjoint parts of a 256 MiB buffer (much
/// larger than any cache); best of 3 passes.
fn read_bandwidth(threads: usize) -> f64 {
    const BYTES: usize = 256 << 20;
    let buf: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let per = buf.len().div_ceil(threads);
    let mut best = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let total: u64 = std::thread::scope(|sc| {
            let hs: Vec<_> = buf
                .chunks(per)
                .map(|part| {
                    sc.spawn(move || {
                        // Four independent sums: the loop vectorizes and is load-bound.
                        let mut acc = [0u64; 4];
                        for c in part.chunks_exact(4) {
                            for i in 0..4 {
                                acc[i] = acc[i].wrapping_add(c[i]);
                            }
                        }
                        acc.iter().fold(0u64, |a, &b| a.wrapping_add(b))
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best = best.max(BYTES as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}
