//! `chord tokenize`, `chord logits` and `chord inspect`.

use std::path::PathBuf;

use inference::engine::{block_on, Session, SessionOptions};
use inference::gguf::GgufHeader;
use inference::quant::Activations;
use serde_json::json;

use crate::cli::{activations, backend_pref, load, load_host, threads, Args, CliResult};

pub fn tokenize(raw: &[String]) -> CliResult<()> {
    let a = Args::parse(raw, &["--model", "--text", "--json"])?;
    let text = a.need("--text")?.to_owned();
    let model = load_host(&a)?;
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

pub fn logits(raw: &[String]) -> CliResult<()> {
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
    backend_pref(&a)?;
    let threads = threads(&a)?;
    let act = activations(&a, Activations::F32)?;
    let top: usize = a.num("--top", 10)?;
    let (loaded, _) = load(&a, false)?;
    let model = &*loaded.model;
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
    let opts = SessionOptions {
        n_ctx: tokens.len(),
        threads,
        activations: act,
    };
    let mut session = Session::new(&loaded, &opts).map_err(|e| e.to_string())?;
    let logits = block_on(session.logits(&tokens, all)).map_err(|e| e.to_string())?;
    // Every position's logits are checked here (the engine checks the last position's only).
    if logits.iter().any(|v| !v.is_finite()) {
        return Err(
            "model: the model computed NaN logits: its weights or settings are broken".into(),
        );
    }
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

pub fn inspect(raw: &[String]) -> CliResult<()> {
    let a = Args::parse(raw, &["--model", "--json"])?;
    let path = PathBuf::from(a.need("--model")?);
    // Only the header is needed: read a growing prefix until it parses.
    let header = read_header(&path)?;
    let md = &header.metadata;
    // Check what a load would check (architecture, tokenizer, tensor shapes) and report it.
    let check = inference::loader::Preflight::new(header.clone());
    let mut types: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for t in &header.tensors {
        let e = types.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.size;
    }
    let tok = inference::tokenizer::Tokenizer::from_metadata(md).ok();
    // Render a sample conversation: a template that fails (or runs out of its budget) is
    // reported here rather than at the first chat.
    let chat = inference::chat::ChatTemplate::from_metadata(md).and_then(|t| t.check());
    let chat_line = match &chat {
        Ok(n) => format!("chat template: ok ({n} bytes for a 4-message sample)"),
        Err(e) => e.to_string(),
    };
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
                "pre_tokenizer": tok.as_ref().and_then(|t| t.pre_tokenizer()),
                "tokenizer_warning": tok.as_ref().and_then(|t| t.warning()),
                "chat_template": match &chat {
                    Ok(n) => json!({ "ok": true, "sample_bytes": n }),
                    Err(e) => json!({ "ok": false, "error": e.to_string() }),
                },
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
        if let Some(t) = &tok {
            println!("pre-tokenizer: {}", t.pre_tokenizer().unwrap_or("(none)"));
            if let Some(w) = t.warning() {
                println!("warning: {w}");
            }
        }
        println!("{chat_line}");
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
