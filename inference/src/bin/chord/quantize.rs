//! `chord quantize IN OUT --type T [--tensor-type PATTERN=TYPE]... [--layers N] [--json]`: write a
//! requantized copy of a GGUF file (`inference::quantize`); `chord split IN.gguf --parts N`: write
//! it as N files like llama.cpp's `gguf-split` (`inference::split`). Every output is written next
//! to its name and renamed into place once complete, so a failed run never leaves a half-written
//! model.

use std::path::PathBuf;
use std::time::Instant;

use inference::quantize::{quantize_model, Override, Preset, QuantizeOptions};
use serde_json::json;

use crate::cli::CliResult;

pub const USAGE: &str =
    "usage: chord quantize IN.gguf OUT.gguf --type TYPE [--tensor-type PATTERN=TYPE]...
                      [--layers N] [--json]
  TYPE: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q3_K Q4_K Q5_K Q6_K, or a mix: Q3_K_S Q3_K_M
  Q4_K_S Q4_K_M Q5_K_S Q5_K_M (_M: attn_v and ffn_down of some layers and output in Q6_K).
  Matrices get TYPE; norms and other vectors keep theirs; a tensor whose type does not change is
  copied byte for byte. --tensor-type overrides matrices whose name (with or without `.weight`)
  matches PATTERN (`*` = anything; the first matching override wins; repeat the flag or separate
  overrides with commas). --layers N keeps the first N layers (a small test model).";

/// The value after flag `flag` (these commands mix positional files and flags, so they do not
/// use `cli::Args`).
fn flag_value<'a>(it: &mut std::slice::Iter<'a, String>, flag: &str) -> CliResult<&'a str> {
    it.next()
        .map(String::as_str)
        .ok_or_else(|| format!("`{flag}` needs a value"))
}

pub fn quantize(raw: &[String]) -> CliResult<()> {
    let mut paths = Vec::new();
    let (mut ty, mut layers, mut json_out) = (None, None, false);
    let mut overrides = Vec::new();
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = || flag_value(&mut it, a);
        match a.as_str() {
            "--type" => ty = Some(value()?),
            "--tensor-type" => {
                for o in value()?.split(',').filter(|s| !s.trim().is_empty()) {
                    overrides.push(Override::parse(o).map_err(|e| e.to_string())?);
                }
            }
            "--layers" => {
                let v = value()?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("`--layers` expects a number, got `{v}`"))?;
                layers = Some(n);
            }
            "--json" => json_out = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with("--") => return Err(format!("unknown option `{s}` for quantize")),
            s => paths.push(PathBuf::from(s)),
        }
    }
    let [input, output] = <[PathBuf; 2]>::try_from(paths).map_err(|_| {
        "quantize needs an input and an output file (chord quantize --help)".to_string()
    })?;
    let preset = Preset::by_name(ty.ok_or("missing `--type` (chord quantize --help)")?)
        .map_err(|e| e.to_string())?;
    if input == output {
        return Err("the output must be another file than the input".into());
    }

    let t0 = Instant::now();
    let bytes = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let opts = QuantizeOptions {
        preset,
        overrides,
        layers,
    };
    let q = quantize_model(&bytes, &opts).map_err(|e| format!("{}: {e}", input.display()))?;
    drop(bytes);
    let mut tmp = output.clone().into_os_string();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, &q.bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &output).map_err(|e| format!("{}: {e}", output.display()))?;

    let secs = t0.elapsed().as_secs_f64();
    let copied = q.tensors.iter().filter(|t| t.copied).count();
    if json_out {
        let tensors: Vec<_> = q
            .tensors
            .iter()
            .map(|t| {
                json!({"name": t.name, "dims": t.dims, "from": t.from.name(), "to": t.to.name(),
                       "copied": t.copied, "fallback": t.fallback})
            })
            .collect();
        let out = json!({"output": output.display().to_string(), "bytes": q.bytes.len(),
            "type": preset.name, "tensors": tensors, "dropped": q.dropped, "seconds": secs});
        println!("{out}");
        return Ok(());
    }
    for t in &q.tensors {
        let how = if t.copied { "copied" } else { "quantized" };
        let dims: Vec<String> = t.dims.iter().map(u64::to_string).collect();
        let why = t
            .fallback
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        println!(
            "{:<28} {:>12} {:>5} -> {:<5} {how}{why}",
            t.name,
            dims.join("x"),
            t.from.name(),
            t.to.name()
        );
    }
    println!(
        "wrote {} ({} bytes, {}): {} tensors ({} quantized, {copied} copied), {} left out, {secs:.1} s",
        output.display(),
        q.bytes.len(),
        preset.name,
        q.tensors.len(),
        q.tensors.len() - copied,
        q.dropped
    );
    Ok(())
}

pub const SPLIT_USAGE: &str = "usage: chord split IN.gguf --parts N [--out PREFIX]
  writes PREFIX-00001-of-0000N.gguf … (PREFIX: IN without .gguf): the first part holds the
  metadata, the tensors are cut in file order into parts of about equal size. Load the model by
  its first part (chord, the app).";

/// `chord split IN.gguf --parts N [--out PREFIX]`.
pub fn split(raw: &[String]) -> CliResult<()> {
    let (mut input, mut parts, mut out) = (None, None, None);
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = || flag_value(&mut it, a);
        match a.as_str() {
            "--parts" => {
                let v = value()?;
                parts = Some(
                    v.parse::<usize>()
                        .map_err(|_| format!("`--parts` expects a number, got `{v}`"))?,
                );
            }
            "--out" => out = Some(value()?.to_owned()),
            "--help" | "-h" => {
                println!("{SPLIT_USAGE}");
                return Ok(());
            }
            s if s.starts_with("--") => return Err(format!("unknown option `{s}` for split")),
            s if input.is_none() => input = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument `{s}` (chord split --help)")),
        }
    }
    let input = input.ok_or("split needs an input file (chord split --help)")?;
    let parts = parts.ok_or("missing `--parts N` (chord split --help)")?;
    let stem = match out {
        Some(p) => p,
        None => {
            let s = input.to_string_lossy();
            s.strip_suffix(".gguf").unwrap_or(&s).to_owned()
        }
    };
    let bytes = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let files = inference::split::split_model(&bytes, parts)
        .map_err(|e| format!("{}: {e}", input.display()))?;
    drop(bytes);
    for (i, data) in files.iter().enumerate() {
        let name = PathBuf::from(inference::split::part_name(&stem, i + 1, parts));
        let mut tmp = name.clone().into_os_string();
        tmp.push(".part");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &name).map_err(|e| format!("{}: {e}", name.display()))?;
        println!("wrote {} ({} bytes)", name.display(), data.len());
    }
    Ok(())
}
