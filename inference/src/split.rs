//! Split a GGUF model into parts the way llama.cpp's `gguf-split` does: part `k` of `n` is a
//! complete GGUF file named `name-0000k-of-0000n.gguf` with `split.no` (u16, from 0),
//! `split.count` (u16) and `split.tensors.count` (i32, all parts' tensors); the first part
//! also holds every other metadata key; the tensors are cut in file order into parts of about
//! equal bytes. [`crate::loader::ModelLoader::new_split`] loads the parts as one model.

use crate::error::{Error, Result};
use crate::gguf::{GgufHeader, GgufWriter, Value};

/// The parts of the model in `bytes` (a whole GGUF file), `parts` of them.
pub fn split_model(bytes: &[u8], parts: usize) -> Result<Vec<Vec<u8>>> {
    let header = GgufHeader::parse_complete(bytes)?;
    if header.metadata.get("split.count").is_some() {
        return Err(Error::Invalid("this model is already split".into()));
    }
    let n_tensors = header.tensors.len();
    if parts == 0 || parts > n_tensors || parts > u16::MAX as usize {
        return Err(Error::Invalid(format!(
            "cannot split {n_tensors} tensors into {parts} parts (1 to {})",
            n_tensors.min(u16::MAX as usize)
        )));
    }
    // Tensors in file order; a part ends once it holds its share of what is left (the bytes
    // not in earlier parts over the parts not yet cut), every part at least one tensor.
    let order = header.file_order();
    let sizes: Vec<u64> = order.iter().map(|&i| header.tensors[i].size).collect();
    let mut left: u64 = sizes.iter().sum();
    let mut cuts = vec![0usize];
    let mut in_part = 0u64;
    for (j, &s) in sizes.iter().enumerate() {
        let parts_left = (parts - cuts.len()) as u64;
        let must = n_tensors - j == parts - cuts.len();
        if parts_left > 0
            && j > cuts[cuts.len() - 1]
            && (must || in_part * (parts_left + 1) >= left)
        {
            cuts.push(j);
            left -= in_part;
            in_part = 0;
        }
        in_part += s;
    }
    cuts.push(n_tensors);
    let mut out = Vec::with_capacity(parts);
    for p in 0..parts {
        let mut w = GgufWriter::new();
        if p == 0 {
            for (k, v) in &header.metadata.0 {
                if k != "general.alignment" {
                    w.value_kv(k, v);
                }
            }
        }
        w.value_kv("split.no", &Value::U16(p as u16));
        w.value_kv("split.count", &Value::U16(parts as u16));
        w.value_kv("split.tensors.count", &Value::I32(n_tensors as i32));
        for &i in &order[cuts[p]..cuts[p + 1]] {
            let t = &header.tensors[i];
            let data = bytes[header.tensor_range(t)].to_vec();
            w.tensor(&t.name, &t.dims, t.ty.id(), data);
        }
        out.push(w.to_bytes());
    }
    Ok(out)
}

/// The file name of part `no` (from 1) of `count` for a model whose path without `.gguf` is
/// `stem`.
pub fn part_name(stem: &str, no: usize, count: usize) -> String {
    format!("{stem}-{no:05}-of-{count:05}.gguf")
}
