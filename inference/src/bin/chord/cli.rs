//! `chord` — the native command line of wasm-chord (contract: ../shared/DESIGN.md); native only.
//!
//! ```text
//! chord generate --model PATH --prompt TEXT [--chat] [--system TEXT] [--max-tokens N]
//!                [--temperature T] [--top-p P] [--top-k K] [--min-p P] [--repeat-penalty R]
//!                [--seed S] [--ctx-size N] [--ignore-eos] [--backend cpu|webgpu] [--threads N] [--json]
//! chord tokenize --model PATH --text TEXT [--json]
//! chord logits   --model PATH (--prompt TEXT | --tokens 1,2,3) [--top K] [--all-positions]
//!                [--backend ...] [--threads N] [--json]
//! chord inspect  --model PATH [--json]
//! chord bench    --model PATH [--threads N] [--prompt-tokens 64] [--gen-tokens 64] [--runs 5]
//!                [--kernels simd|scalar|avx2|avxvnni|avx512vnni] [--activations f32|q8]
//!                [--backend cpu|webgpu] [--profile] [--json]
//! ```
//! Errors are one line on stderr and a non-zero exit status.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use inference::backend::cpu::Logits;
#[cfg(feature = "webgpu")]
use inference::backend::webgpu;
use inference::engine::{GenerateParams, Model, Session};
use inference::gguf::GgufHeader;
use inference::quant::Activations;
use inference::sampler::SamplerParams;
use serde_json::json;

const USAGE: &str = "usage:
  chord generate --model PATH --prompt TEXT [--chat] [--system TEXT] [--max-tokens N] [--temperature T]
                 [--top-p P] [--top-k K] [--min-p P] [--repeat-penalty R] [--seed S] [--ctx-size N]
                 [--ignore-eos] [--backend cpu|webgpu] [--threads N] [--activations f32|q8] [--json]
  chord tokenize --model PATH --text TEXT [--json]
  chord logits   --model PATH (--prompt TEXT | --tokens 1,2,3) [--top K] [--all-positions]
                 [--backend cpu|webgpu] [--threads N] [--activations f32|q8] [--json]
  chord inspect  --model PATH [--json]
  chord bench    --model PATH [--threads N] [--prompt-tokens 64] [--gen-tokens 64] [--runs 5]
                 [--kernels simd|scalar|avx2|avxvnni|avx512vnni] [--activations f32|q8]
                 [--backend cpu|webgpu] [--profile] [--json]

  --activations: q8 (the default of generate and bench) quantizes matmul inputs to 8 bits like
  llama.cpp (about twice as fast; logits move by up to ~1); f32 (the default of logits) keeps them
  exact.";

type CliResult<T> = Result<T, String>;

/// Parsed `--flag value` / `--switch` arguments.
struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

const SWITCHES: &[&str] = &[
    "--chat",
    "--json",
    "--all-positions",
    "--ignore-eos",
    "--profile",
    "--help",
];

impl Args {
    fn parse(raw: &[String], allowed: &[&str]) -> CliResult<Args> {
        let mut values = HashMap::new();
        let mut switches = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if !a.starts_with("--") {
                return Err(format!("unexpected argument `{a}`"));
            }
            if !allowed.contains(&a.as_str()) && a != "--help" {
                return Err(format!("unknown option `{a}` for this command"));
            }
            if SWITCHES.contains(&a.as_str()) {
                switches.push(a.clone());
            } else {
                let v = it.next().ok_or_else(|| format!("`{a}` needs a value"))?;
                values.insert(a.clone(), v.clone());
            }
        }
        Ok(Args { values, switches })
    }

    fn flag(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn need(&self, name: &str) -> CliResult<&str> {
        self.get(name).ok_or_else(|| format!("missing `{name}`"))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> CliResult<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("`{name}` expects a number, got `{v}`")),
        }
    }
}

pub fn main() {
    // Never a backtrace: a bug still ends with one line and a non-zero status.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {msg}{at}");
    }));
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&argv) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn run(argv: &[String]) -> CliResult<()> {
    let Some((cmd, rest)) = argv.split_first() else {
        return Err(format!("no command\n{USAGE}"));
    };
    match cmd.as_str() {
        "generate" => generate(rest),
        "tokenize" => tokenize(rest),
        "logits" => logits(rest),
        "inspect" => inspect(rest),
        "bench" => bench(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

fn load(args: &Args) -> CliResult<(Model, f64)> {
    let path = PathBuf::from(args.need("--model")?);
    let t = Instant::now();
    let m = Model::load_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((m, t.elapsed().as_secs_f64()))
}

fn check_backend(args: &Args) -> CliResult<&'static str> {
    match args.get("--backend").unwrap_or("cpu") {
        "cpu" => Ok("cpu"),
        #[cfg(feature = "webgpu")]
        "webgpu" => Ok("webgpu"),
        #[cfg(not(feature = "webgpu"))]
        "webgpu" => {
            Err("this build has no webgpu backend (feature `webgpu`); use --backend cpu".into())
        }
        other => Err(format!("unknown backend `{other}` (cpu or webgpu)")),
    }
}

#[cfg(feature = "webgpu")]
type GpuHandle = Option<webgpu::GpuModel>;
#[cfg(not(feature = "webgpu"))]
type GpuHandle = Option<std::convert::Infallible>;

/// Load for `backend`: on webgpu the weight matrices go to the GPU tensor by tensor as the file
/// is read, so the host never holds them (`Model::offloaded`).
/// `timestamps` asks the GPU for timestamp queries (`chord bench`: GPU time per token).
fn load_on(args: &Args, backend: &str, timestamps: bool) -> CliResult<(Model, GpuHandle, f64)> {
    #[cfg(feature = "webgpu")]
    if backend == "webgpu" {
        use std::cell::RefCell;
        use std::rc::Rc;
        let path = PathBuf::from(args.need("--model")?);
        let t = Instant::now();
        let opts = webgpu::GpuOptions {
            timestamps,
            ..Default::default()
        };
        let dev = pollster::block_on(webgpu::GpuDevice::new(&opts)).map_err(|e| e.to_string())?;
        let up = Rc::new(RefCell::new(webgpu::GpuUploader::new(dev)));
        let sink_up = up.clone();
        let sink: inference::engine::TensorSink =
            Box::new(move |t, d| sink_up.borrow_mut().take(t, d));
        let m = Model::load_file_with(&path, Some(sink))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let up = Rc::try_unwrap(up)
            .map_err(|_| "internal error: the GPU uploader is still shared".to_owned())?
            .into_inner();
        let gm = pollster::block_on(webgpu::GpuModel::from_uploader(up, &m))
            .map_err(|e| e.to_string())?;
        return Ok((m, Some(gm), t.elapsed().as_secs_f64()));
    }
    let _ = (backend, timestamps);
    let (m, s) = load(args)?;
    Ok((m, None, s))
}

fn threads(args: &Args) -> CliResult<usize> {
    let default = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n: usize = args.num("--threads", default)?;
    if n == 0 {
        return Err("`--threads` must be at least 1".into());
    }
    Ok(n)
}

/// `--activations f32|q8` (default `default`).
fn activations(args: &Args, default: Activations) -> CliResult<Activations> {
    match args.get("--activations") {
        None => Ok(default),
        Some("f32") => Ok(Activations::F32),
        Some("q8") => Ok(Activations::Q8),
        Some(other) => Err(format!("unknown activations `{other}` (f32 or q8)")),
    }
}

fn generate(raw: &[String]) -> CliResult<()> {
    let a = Args::parse(
        raw,
        &[
            "--model",
            "--prompt",
            "--chat",
            "--system",
            "--max-tokens",
            "--temperature",
            "--top-p",
            "--top-k",
            "--min-p",
            "--repeat-penalty",
            "--seed",
            "--ctx-size",
            "--ignore-eos",
            "--backend",
            "--threads",
            "--activations",
            "--json",
        ],
    )?;
    let backend = check_backend(&a)?;
    let threads = threads(&a)?;
    let act = activations(&a, Activations::Q8)?;
    let prompt_text = a.need("--prompt")?.to_owned();
    let d = SamplerParams::default();
    let sampler = SamplerParams {
        temperature: a.num("--temperature", 0.0)?,
        top_k: a.num("--top-k", d.top_k)?,
        top_p: a.num("--top-p", d.top_p)?,
        min_p: a.num("--min-p", d.min_p)?,
        repeat_penalty: a.num("--repeat-penalty", d.repeat_penalty)?,
        seed: a.num("--seed", d.seed)?,
        ..d
    };
    let params = GenerateParams {
        max_tokens: a.num("--max-tokens", 128)?,
        sampler,
        ignore_eos: a.flag("--ignore-eos"),
    };
    let (model, gpu_model, load_s) = load_on(&a, backend, false)?;
    let text = if a.flag("--chat") {
        model
            .chat_prompt(a.get("--system"), &prompt_text)
            .map_err(|e| e.to_string())?
    } else {
        prompt_text
    };
    let prompt = model.tokenizer.encode(&text, true);
    // The KV cache holds what this run needs, not the model's whole training context.
    let n_ctx = a.num("--ctx-size", prompt.len() + params.max_tokens)?;
    let json_out = a.flag("--json");
    let mut stdout = std::io::stdout();
    let on_piece = |_: u32, piece: &str| {
        if !json_out {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }
        true
    };
    let (g, adapter, kv_cache_bytes, gpu, load_s) = if backend == "webgpu" {
        #[cfg(feature = "webgpu")]
        {
            let gm = gpu_model.as_ref().ok_or("internal error: no GPU model")?;
            let mut session = webgpu::GpuSession::new(gm, n_ctx, &webgpu::GpuOptions::default())
                .map_err(|e| e.to_string())?;
            let g =
                pollster::block_on(session.generate(&model.tokenizer, &prompt, &params, on_piece))
                    .map_err(|e| e.to_string())?;
            let st = session.stats();
            let gpu = json!({
                "dispatches_per_token": st.dispatches_per_token,
                "submits_per_token": st.submits_per_token,
                "readback_bytes_per_token": st.readback_bytes_per_token,
                "buffer_bytes": st.buffer_bytes,
                "tensor_bytes": st.tensor_bytes,
                "kv_cache_bytes": st.kv_cache_bytes,
                "scratch_bytes": st.scratch_bytes,
            });
            (
                g,
                gm.adapter_info(),
                st.kv_cache_bytes as usize,
                Some(gpu),
                load_s,
            )
        }
        #[cfg(not(feature = "webgpu"))]
        {
            unreachable!("check_backend rejects webgpu without the feature")
        }
    } else {
        let mut session = Session::new(&model, n_ctx, threads).map_err(|e| e.to_string())?;
        session.set_activations(act);
        let g = session
            .generate(&prompt, &params, on_piece)
            .map_err(|e| e.to_string())?;
        let adapter = format!(
            "CPU ({threads} thread{})",
            if threads == 1 { "" } else { "s" }
        );
        (g, adapter, session.kv.bytes(), None, load_s)
    };
    if json_out {
        let mut out = json!({
            "model": model.name,
            "backend": backend,
            "adapter": adapter,
            "activations": act.name(),
            "kernels": inference::quant::kernels(),
            "prompt_tokens": prompt,
            "tokens": g.tokens,
            "text": g.text,
            "stop": g.stop,
            "load_s": load_s,
            "prefill_tok_s": g.prefill_tok_s(),
            "decode_tok_s": g.decode_tok_s(),
            "kv_cache_bytes": kv_cache_bytes,
        });
        if let (Some(gpu), Some(o)) = (gpu, out.as_object_mut()) {
            o.insert("gpu".into(), gpu);
        }
        println!("{out}");
    } else {
        println!();
        eprintln!(
            "[{} prompt tokens, {:.1} tok/s prefill; {} tokens, {:.1} tok/s decode; load {:.2} s; stop: {}]",
            g.prompt_len,
            g.prefill_tok_s(),
            g.tokens.len(),
            g.decode_tok_s(),
            load_s,
            g.stop
        );
    }
    Ok(())
}

/// `chord bench`: prefill and decode speed (median of `--runs`), the weight bandwidth decoding
/// achieves, and the machine's memory read bandwidth for reference.
fn bench(raw: &[String]) -> CliResult<()> {
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
    let backend = check_backend(&a)?;
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
    let (model, gpu_model, load_s) = load_on(&a, backend, true)?;
    let prompt = bench_prompt(&model, n_prompt);
    let n_ctx = n_prompt + n_gen;
    let decode_bytes = decode_weight_bytes(&model);
    if backend == "webgpu" {
        #[cfg(feature = "webgpu")]
        {
            let gm = gpu_model.as_ref().ok_or("internal error: no GPU model")?;
            let b = BenchSetup {
                model: &model,
                prompt: &prompt,
                n_gen,
                runs,
                decode_bytes,
                load_s,
                json: a.flag("--json"),
                profile: a.flag("--profile"),
            };
            return bench_gpu(gm, &b);
        }
    }
    let _ = gpu_model;

    let mut session = Session::new(&model, n_ctx, threads).map_err(|e| e.to_string())?;
    session.set_activations(act);
    let one_run = |session: &mut Session| -> CliResult<(f64, f64, f64)> {
        session.reset();
        let t0 = Instant::now();
        let mut logits = session
            .eval(&prompt, Logits::Last)
            .map_err(|e| e.to_string())?;
        let prefill = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let c1 = cpu_seconds();
        for _ in 0..n_gen {
            let next = inference::sampler::argmax(&logits);
            logits = session
                .eval(&[next], Logits::Last)
                .map_err(|e| e.to_string())?;
        }
        let decode = t1.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c1;
        Ok((
            n_prompt as f64 / prefill,
            n_gen as f64 / decode.max(1e-12),
            n_gen as f64 / cpu.max(1e-12),
        ))
    };
    one_run(&mut session)?; // warm-up: page in the weights, grow the buffers
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    let mut decode_cpu = Vec::new();
    for _ in 0..runs {
        let (p, d, c) = one_run(&mut session)?;
        prefill.push(p);
        decode.push(d);
        decode_cpu.push(c);
    }
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
        .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
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

/// What `chord bench` measures, for either backend.
#[cfg(feature = "webgpu")]
struct BenchSetup<'a> {
    model: &'a Model,
    prompt: &'a [u32],
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
fn bench_gpu(gm: &webgpu::GpuModel, b: &BenchSetup) -> CliResult<()> {
    let n_prompt = b.prompt.len();
    let n_ctx = n_prompt + b.n_gen;
    let mut session = webgpu::GpuSession::new(gm, n_ctx, &webgpu::GpuOptions::default())
        .map_err(|e| e.to_string())?;
    // (prefill tok/s, decode tok/s, GPU ms per decode token, GPU ms of the prompt)
    let one_run = |s: &mut webgpu::GpuSession| -> CliResult<(f64, f64, Option<f64>, Option<f64>)> {
        s.reset();
        let t0 = Instant::now();
        let mut tok = s.prefill_blocking(b.prompt).map_err(|e| e.to_string())?;
        let prefill = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        for _ in 0..b.n_gen {
            tok = s.step_blocking(tok).map_err(|e| e.to_string())?;
        }
        let decode = t1.elapsed().as_secs_f64();
        let st = s.stats();
        Ok((
            n_prompt as f64 / prefill,
            b.n_gen as f64 / decode.max(1e-12),
            st.gpu_ms_per_token,
            st.gpu_prefill_ms,
        ))
    };
    one_run(&mut session)?; // warm-up: pipelines, first-use allocations, clocks up
    let (mut prefill, mut decode, mut gpu_tok, mut gpu_pre) = (vec![], vec![], vec![], vec![]);
    for _ in 0..b.runs {
        let (p, d, g, gp) = one_run(&mut session)?;
        prefill.push(p);
        decode.push(d);
        gpu_tok.extend(g);
        gpu_pre.extend(gp);
    }
    let (p_med, d_med) = (median(&prefill), median(&decode));
    let gpu_ms = (!gpu_tok.is_empty()).then(|| median(&gpu_tok));
    let gpu_pre_ms = (!gpu_pre.is_empty()).then(|| median(&gpu_pre));
    let gb = b.decode_bytes as f64 / 1e9;
    let st = session.stats();
    let profile = if b.profile && session.set_profile(true) {
        one_run(&mut session)?;
        session.profile()
    } else {
        Vec::new()
    };
    if b.json {
        let out = json!({
            "model": b.model.name,
            "backend": "webgpu",
            "adapter": gm.adapter_info(),
            "load_s": b.load_s,
            "prompt_tokens": n_prompt,
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
                .map(|(what, ms, n)| json!({"op": what, "ms_per_token": ms, "dispatches": n}))
                .collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}: webgpu on {}, median of {} runs",
        b.model.name,
        gm.adapter_info(),
        b.runs
    );
    println!(
        "  prefill {n_prompt} tokens: {p_med:8.1} tok/s   (runs: {}){}",
        fmt_list(&prefill),
        gpu_pre_ms.map_or(String::new(), |ms| format!("; GPU time {ms:.2} ms"))
    );
    println!(
        "  decode  {} tokens: {d_med:8.1} tok/s   (runs: {}) = {:.2} ms per token",
        b.n_gen,
        fmt_list(&decode),
        1e3 / d_med
    );
    match gpu_ms {
        Some(ms) => println!(
            "  GPU time per decode token: {ms:.3} ms ({:.1} GB/s of weights; the rest of each \
             step is submit, readback and host)",
            gb / (ms / 1e3)
        ),
        None => println!("  GPU time per token: not available (adapter has no timestamp queries)"),
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
        for (what, ms, n) in &profile {
            println!(
                "    {what:<16} {ms:8.3} ms  {:5.1} %  {n:6.1} dispatches  {:7.1} us each",
                100.0 * ms / total,
                1e3 * ms / n.max(1e-9)
            );
        }
    }
    Ok(())
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

fn tokenize(raw: &[String]) -> CliResult<()> {
    let a = Args::parse(raw, &["--model", "--text", "--json"])?;
    let text = a.need("--text")?.to_owned();
    let (model, _) = load(&a)?;
    let toks = model.tokenizer.encode(&text, true);
    if a.flag("--json") {
        println!("{}", json!({ "tokens": toks }));
    } else {
        for t in &toks {
            let piece =
                String::from_utf8_lossy(&model.tokenizer.token_piece_bytes(*t)).into_owned();
            println!("{t:>8} {piece:?}");
        }
    }
    Ok(())
}

fn logits(raw: &[String]) -> CliResult<()> {
    let a = Args::parse(
        raw,
        &[
            "--model",
            "--prompt",
            "--tokens",
            "--top",
            "--all-positions",
            "--backend",
            "--threads",
            "--activations",
            "--json",
        ],
    )?;
    let backend = check_backend(&a)?;
    let threads = threads(&a)?;
    let act = activations(&a, Activations::F32)?;
    let top: usize = a.num("--top", 10)?;
    let (model, gpu_model, _) = load_on(&a, backend, false)?;
    let tokens: Vec<u32> = match (a.get("--prompt"), a.get("--tokens")) {
        (Some(p), None) => model.tokenizer.encode(p, true),
        (None, Some(t)) => t
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("`--tokens`: `{s}` is not a token id"))
            })
            .collect::<CliResult<_>>()?,
        _ => return Err("give exactly one of `--prompt` or `--tokens`".into()),
    };
    if tokens.is_empty() {
        return Err("no tokens to evaluate".into());
    }
    let all = a.flag("--all-positions");
    let logits = if backend == "webgpu" {
        #[cfg(feature = "webgpu")]
        {
            let gm = gpu_model.as_ref().ok_or("internal error: no GPU model")?;
            let mut session =
                webgpu::GpuSession::new(gm, tokens.len(), &webgpu::GpuOptions::default())
                    .map_err(|e| e.to_string())?;
            session
                .logits_blocking(&tokens, all)
                .map_err(|e| e.to_string())?
        }
        #[cfg(not(feature = "webgpu"))]
        {
            unreachable!("check_backend rejects webgpu without the feature")
        }
    } else {
        let mut session = Session::new(&model, tokens.len(), threads).map_err(|e| e.to_string())?;
        session.set_activations(act);
        let want = if all { Logits::All } else { Logits::Last };
        session.eval(&tokens, want).map_err(|e| e.to_string())?
    };
    let nv = model.hp.n_vocab;
    let first = if all { 0 } else { tokens.len() - 1 };
    let mut positions = Vec::new();
    for (i, row) in logits.chunks_exact(nv).enumerate() {
        let mut idx: Vec<u32> = (0..nv as u32).collect();
        let k = top.min(nv);
        let order =
            |&x: &u32, &y: &u32| row[y as usize].total_cmp(&row[x as usize]).then(x.cmp(&y));
        if k > 0 && k < nv {
            idx.select_nth_unstable_by(k - 1, order);
        }
        idx.truncate(k);
        idx.sort_by(order);
        let topv: Vec<(u32, f32)> = idx.iter().map(|&t| (t, row[t as usize])).collect();
        positions.push((first + i, topv));
    }
    let last = &logits[logits.len() - nv..];
    let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mean = last.iter().map(|&x| x as f64).sum::<f64>() / nv as f64;
    let l2 = last
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    if a.flag("--json") {
        let pos: Vec<_> = positions
            .iter()
            .map(|(p, t)| json!({ "pos": p, "top": t.iter().map(|&(i, l)| json!([i, l])).collect::<Vec<_>>() }))
            .collect();
        println!(
            "{}",
            json!({ "positions": pos, "max": max, "mean": mean, "l2": l2 })
        );
    } else {
        for (p, t) in &positions {
            println!("pos {p}:");
            for (i, l) in t {
                let piece =
                    String::from_utf8_lossy(&model.tokenizer.token_piece_bytes(*i)).into_owned();
                println!("  {i:>8} {l:>10.4} {piece:?}");
            }
        }
        println!("last position: max {max:.4} mean {mean:.4} l2 {l2:.2}");
    }
    Ok(())
}

fn inspect(raw: &[String]) -> CliResult<()> {
    let a = Args::parse(raw, &["--model", "--json"])?;
    let path = PathBuf::from(a.need("--model")?);
    // Only the header is needed: read a growing prefix until it parses.
    let header = read_header(&path)?;
    let md = &header.metadata;
    // Check what a load would check (architecture, tokenizer, tensor shapes) and report it.
    let check = inference::engine::Preflight::new(header.clone());
    let mut types: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for t in &header.tensors {
        let e = types.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.size;
    }
    if a.flag("--json") {
        let meta: serde_json::Map<String, serde_json::Value> =
            md.0.iter()
                .map(|(k, v)| (k.clone(), json!(v.summary())))
                .collect();
        let tensors: Vec<_> = header
            .tensors
            .iter()
            .map(|t| json!({"name": t.name, "type": t.ty.name(), "dims": t.dims, "bytes": t.size}))
            .collect();
        println!(
            "{}",
            json!({
                "version": header.version,
                "file_size": header.file_size,
                "alignment": header.alignment,
                "data_offset": header.data_offset,
                "metadata": meta,
                "tensors": tensors,
                "tensor_bytes": header.tensor_bytes(),
                "supported": check.is_ok(),
                "problem": check.as_ref().err().map(|e| e.to_string()),
            })
        );
    } else {
        println!(
            "GGUF v{}, {} bytes, {} tensors",
            header.version,
            header.file_size,
            header.tensors.len()
        );
        for (k, v) in &md.0 {
            println!("  {k} = {}", v.summary());
        }
        println!("tensor types:");
        for (ty, (n, b)) in &types {
            println!("  {ty:>6}: {n:>4} tensors, {:.1} MB", *b as f64 / 1e6);
        }
        match &check {
            Ok(p) => println!(
                "supported: {} — {} layers, {} heads ({} KV), embedding {}, vocabulary {}",
                p.hp.arch.name(),
                p.hp.n_layer,
                p.hp.n_head,
                p.hp.n_head_kv,
                p.hp.n_embd,
                p.hp.n_vocab
            ),
            Err(e) => println!("not loadable: {e}"),
        }
    }
    Ok(())
}

fn read_header(path: &std::path::Path) -> CliResult<GgufHeader> {
    use std::io::Read;
    let io = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut buf = Vec::new();
    let mut want = 1usize << 20;
    loop {
        let have = buf.len();
        buf.resize(want.min(size as usize), 0);
        f.read_exact(&mut buf[have..]).map_err(io)?;
        match GgufHeader::parse(&buf, size).map_err(|e| format!("{}: {e}", path.display()))? {
            Some(h) => return Ok(h),
            None => want *= 2,
        }
    }
}
