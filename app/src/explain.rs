//! Errors in the user's words: one plain sentence for what happened and what to do, with the
//! engine's technical message kept as the detail (shown behind a "Details" toggle).

use crate::format;

/// An error as the page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// What happened, in plain words (one or two sentences).
    pub sentence: String,
    /// The technical message, as the engine or the browser gave it.
    pub detail: String,
}

impl Explained {
    /// A message that is already plain (nothing technical behind it).
    pub fn plain(sentence: impl Into<String>) -> Self {
        Explained {
            sentence: sentence.into(),
            detail: String::new(),
        }
    }
}

/// The numbers in `text` after `key` (e.g. `"bytes at data offset "` → the offset).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The text between the first pair of backticks after `key`.
fn quoted_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = &text[text.find(key)? + key.len()..];
    let start = rest.find('`')? + 1;
    let len = rest[start..].find('`')?;
    Some(&rest[start..start + len])
}

/// How long a truncated file should be: the engine says so ("the tensors need a file of N
/// bytes"); older messages name only the first tensor that runs past the end:
/// `file_size - data_bytes` is where the data starts, plus that tensor's offset and size.
fn expected_size(detail: &str, file_size: u64) -> Option<u64> {
    if let Some(n) = number_after(detail, "need a file of ") {
        return Some(n);
    }
    let size = number_after(detail, "` (")?;
    let offset = number_after(detail, "bytes at data offset ")?;
    let data = number_after(detail, "end of the file (")?;
    let start = file_size.checked_sub(data)?;
    start.checked_add(offset)?.checked_add(size)
}

/// A failed model load (`detail`: the engine's message; `file_size`: the bytes the page had).
pub fn load_error(detail: &str, file_size: Option<u64>) -> Explained {
    let d = detail.to_ascii_lowercase();
    let file_size = number_after(detail, "this one has ").or(file_size);
    let sentence = if d.contains("not a gguf file") {
        "This is not a GGUF model file. Pick a .gguf file (for example from Hugging Face)."
            .to_owned()
    } else if d.contains("runs past the end of the file") || d.contains("truncated") {
        let have = file_size.map(format::bytes);
        let need = file_size
            .and_then(|s| expected_size(detail, s))
            .map(format::bytes);
        match (have, need) {
            (Some(have), Some(need)) if detail.contains("need a file of ") => {
                format!("This file is incomplete — {have} of {need}. Download it again.")
            }
            (Some(have), Some(need)) => {
                format!("This file is incomplete — {have} of at least {need}. Download it again.")
            }
            (Some(have), None) => {
                format!("This file is incomplete — it ends after {have}. Download it again.")
            }
            _ => "This file is incomplete. Download it again.".to_owned(),
        }
    } else if d.contains("unsupported: architecture") {
        match quoted_after(detail, "architecture") {
            Some(arch) => format!(
                "This model's architecture ({arch}) is not supported yet. Models in the list work."
            ),
            None => "This model's architecture is not supported yet.".to_owned(),
        }
    } else if d.contains("unsupported") {
        "This model uses a feature the engine does not support yet.".to_owned()
    } else if d.contains("chat template") {
        "The model's chat template could not be used, so it cannot chat. Completion mode in \
         Settings still works."
            .to_owned()
    } else if d.starts_with("gpu") || d.contains(": gpu:") || d.contains("webgpu") {
        "The GPU could not run this model. Choose the CPU engine in Settings and load it again."
            .to_owned()
    } else if d.contains("invalid gguf") {
        "This file is damaged: its contents do not make a valid GGUF model.".to_owned()
    } else if d.contains("memory") || d.contains("too large") {
        "This model is too large for this browser's memory.".to_owned()
    } else {
        "This file could not be loaded as a model.".to_owned()
    };
    Explained {
        sentence,
        detail: detail.to_owned(),
    }
}

/// A failed download or storage operation (`detail`: what the browser said).
pub fn transfer_error(detail: &str) -> Explained {
    let d = detail.to_ascii_lowercase();
    // Messages the page wrote itself are already plain (the storage check, a resumable stop).
    if d.contains("free in this browser's storage") || d.contains("press load again") {
        return Explained {
            sentence: detail.to_owned(),
            detail: String::new(),
        };
    }
    let sentence = if d.contains("http 404") || d.contains("not found") {
        "The model was not found at that address.".to_owned()
    } else if d.contains("http ") {
        "The server refused the download.".to_owned()
    } else if d.contains("network") || d.contains("fetch") || d.contains("connection") {
        "The download failed: the connection was lost. What was downloaded is kept; try again to \
         resume."
            .to_owned()
    } else if d.contains("quota") || d.contains("storage") || d.contains("indexeddb") {
        "The browser's storage refused to keep the model.".to_owned()
    } else {
        return load_error(detail, None);
    };
    Explained {
        sentence,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_file_says_how_much_is_missing() {
        // The engine's message for SmolLM2 135M Q4_1 cut at 3.5 MB (its real layout: data from
        // byte 1,749,536).
        let size = 3_500_000u64;
        let data = size - 1_749_536;
        let detail = format!(
            "Cannot load truncated.gguf: invalid GGUF: tensor `token_embd.weight` (30081024 bytes \
             at data offset 0) runs past the end of the file ({data} data bytes)"
        );
        let e = load_error(&detail, Some(size));
        assert_eq!(
            e.sentence,
            "This file is incomplete — 3.5 MB of at least 31.8 MB. Download it again."
        );
        assert_eq!(e.detail, detail);
        // The engine's message now gives the whole file's size.
        let e = load_error(
            "invalid GGUF: tensor `token_embd.weight` (30081024 bytes at data offset 0) runs past \
             the end of the file (1750464 data bytes; the tensors need a file of 98362432 bytes, \
             this one has 3500000)",
            Some(size),
        );
        assert_eq!(
            e.sentence,
            "This file is incomplete — 3.5 MB of 98.4 MB. Download it again."
        );
        // The page no longer knows the size (every byte was sent): the message says it.
        let e = load_error(&e.detail, None);
        assert!(e.sentence.contains("3.5 MB of 98.4 MB"), "{}", e.sentence);
        let e = load_error("invalid GGUF: file is truncated", Some(size));
        assert!(e.sentence.contains("ends after 3.5 MB"), "{}", e.sentence);
    }

    #[test]
    fn other_errors_in_plain_words() {
        let e = load_error(
            "Cannot load x.gguf: invalid GGUF: not a GGUF file (magic [54, 68], expected \"GGUF\")",
            Some(8000),
        );
        assert!(e.sentence.starts_with("This is not a GGUF model file"));
        let e = load_error(
            "Cannot load m.gguf: unsupported: architecture `mamba` (supported: llama, qwen2)",
            None,
        );
        assert!(
            e.sentence.contains("(mamba) is not supported"),
            "{}",
            e.sentence
        );
        let e = load_error("Cannot load m.gguf: chat template: boom", None);
        assert!(e.sentence.contains("chat template"));
        let e = load_error(
            "Cannot load c.gguf: invalid GGUF: tensor count 1099511627776 at byte 16 exceeds the \
             1048560 bytes left in the file",
            None,
        );
        assert!(
            e.sentence.starts_with("This file is damaged"),
            "{}",
            e.sentence
        );
        let e = load_error("something odd", None);
        assert_eq!(e.sentence, "This file could not be loaded as a model.");
        let e = transfer_error("HTTP 404 for https://example.com/m.gguf");
        assert!(e.sentence.contains("not found"));
        let e = transfer_error(
            "m.gguf needs 44.2 MB, 1.0 MB free in this browser's storage for this site: delete \
             stored models or free disk space, then try again.",
        );
        assert!(e.sentence.starts_with("m.gguf needs 44.2 MB") && e.detail.is_empty());
    }
}
