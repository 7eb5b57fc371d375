//! What the model cache in IndexedDB records about each model, and the pure rules around it
//! (resume offsets, `Content-Range`, completeness). The IndexedDB calls themselves live in the
//! UI binary (`model_store.rs`); this part is plain Rust so it is unit-tested natively.
//!
//! ```text
//! store "models"  key = id (the source URL, or "file:<name>:<size>")   value = CachedModel (JSON)
//! store "chunks"  key = [id, index]                                    value = ArrayBuffer
//!                 every chunk is CHUNK_BYTES long except the last one
//! ```

use serde::{Deserialize, Serialize};

/// Bytes per stored chunk (and per message to the engine worker).
pub const CHUNK_BYTES: u64 = 4 << 20;

/// One model in the cache: complete, or a partial download that can be resumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedModel {
    pub id: String,
    /// What the user sees ("SmolLM2 135M Instruct", or a dropped file's name).
    pub name: String,
    /// Where the bytes come from (`None` for a local file).
    pub url: Option<String>,
    /// Total size in bytes (from `Content-Length`/`Content-Range`, or the file).
    pub size: u64,
    /// Expected sha256 (lower-case hex) when the catalog publishes one.
    pub sha256: Option<String>,
    /// Chunks `0..chunks` are stored.
    pub chunks: u64,
    /// Set only after every chunk is stored, the size and sha256 check out and the engine
    /// accepted the file: a half-written model is never treated as complete.
    pub complete: bool,
    /// When the entry was last written (ms since the epoch).
    pub updated_ms: f64,
    /// A split model (`…-00001-of-0000N.gguf`, `url` its first part): each part's size, the parts
    /// stored end to end (`size` is their sum). Empty: one file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
}

impl CachedModel {
    pub fn new(id: &str, name: &str, url: Option<&str>, size: u64, sha256: Option<&str>) -> Self {
        CachedModel {
            id: id.to_owned(),
            name: name.to_owned(),
            url: url.map(str::to_owned),
            size,
            sha256: sha256.map(str::to_owned),
            chunks: 0,
            complete: false,
            updated_ms: 0.0,
            parts: Vec::new(),
        }
    }

    /// Number of chunks a model of this size is stored in.
    pub fn total_chunks(&self) -> u64 {
        self.size.div_ceil(CHUNK_BYTES)
    }

    /// Bytes held by chunks `0..chunks`.
    pub fn stored_bytes(&self) -> u64 {
        (self.chunks * CHUNK_BYTES).min(self.size)
    }

    /// Length of chunk `index`.
    pub fn chunk_len(&self, index: u64) -> u64 {
        let start = index * CHUNK_BYTES;
        self.size.saturating_sub(start).min(CHUNK_BYTES)
    }

    /// Every chunk is there (still to be verified before `complete` is set).
    pub fn all_stored(&self) -> bool {
        self.chunks >= self.total_chunks()
    }
}

/// Why a download of `needed` more bytes should not start, given `navigator.storage.estimate()`'s
/// `usage` and `quota`: `None` when it fits.
pub fn storage_shortfall(name: &str, needed: u64, usage: f64, quota: f64) -> Option<String> {
    let free = (quota - usage).max(0.0);
    (needed as f64 > free).then(|| {
        format!(
            "{name} needs {}, {} free in this browser's storage for this site: delete stored \
             models or free disk space, then try again.",
            crate::format::bytes(needed),
            crate::format::bytes(free as u64)
        )
    })
}

/// The URLs of every part of a split model, from its first part's URL
/// (`…/name-00001-of-00003.gguf`, with any query string kept on each); `None` for a URL of an
/// ordinary file (or of another part than the first).
pub fn split_part_urls(url: &str) -> Option<Vec<String>> {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let (path, query) = url.split_at(cut);
    let (stem, n) = inference::loader::split_name(path)?;
    (n > 1).then(|| {
        (1..=n)
            .map(|i| format!("{stem}-{i:05}-of-{n:05}.gguf{query}"))
            .collect()
    })
}

/// Which of `parts` (sizes, laid end to end) holds byte `at`, and where in it it is; past the
/// end: the last part's end.
pub fn part_at(parts: &[u64], at: u64) -> (usize, u64) {
    let mut start = 0u64;
    for (i, &size) in parts.iter().enumerate() {
        if at < start + size || i + 1 == parts.len() {
            return (i, at - start.min(at));
        }
        start += size;
    }
    (0, at)
}

/// The cache id of a dropped or picked file.
pub fn file_id(name: &str, size: u64) -> String {
    format!("file:{name}:{size}")
}

/// `Content-Range: bytes START-END/TOTAL` → `(start, end_inclusive, total)`.
pub fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    let total = total.trim().parse().ok()?;
    (start <= end && end < total).then_some((start, end, total))
}

/// What a response to a download request means for the bytes we already have (`have`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponsePlan {
    /// Size of the whole file.
    pub total: u64,
    /// Offset in the file of the first byte of this response body.
    pub body_start: u64,
    /// Bytes of the body to throw away (already stored) before the new ones.
    pub skip: u64,
}

/// Interpret a response: `206` with `Content-Range` continues at its start; `200` sends the whole
/// file again, so the bytes we have are skipped. Errors are user-facing sentences.
pub fn plan_response(
    status: u16,
    content_length: Option<u64>,
    content_range: Option<&str>,
    have: u64,
) -> Result<ResponsePlan, String> {
    match status {
        206 => {
            let (start, _end, total) = content_range
                .and_then(parse_content_range)
                .ok_or("the server answered a range request without a valid Content-Range")?;
            if start > have {
                return Err(format!(
                    "the server resumed at byte {start}, after the {have} bytes we have"
                ));
            }
            Ok(ResponsePlan {
                total,
                body_start: start,
                skip: have - start,
            })
        }
        200 => {
            let total = content_length
                .ok_or("the server did not send the size of the file (Content-Length)")?;
            Ok(ResponsePlan {
                total,
                body_start: 0,
                skip: have,
            })
        }
        416 => Err("the server refused the resume request (HTTP 416)".into()),
        s => Err(format!("HTTP {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_models() {
        let urls = split_part_urls("https://h/m/Qwen-7B-Q4_K_M-00001-of-00003.gguf?download=true")
            .expect("a split model");
        assert_eq!(urls.len(), 3);
        assert_eq!(
            urls[2],
            "https://h/m/Qwen-7B-Q4_K_M-00003-of-00003.gguf?download=true"
        );
        assert_eq!(split_part_urls("https://h/m-00002-of-00003.gguf"), None);
        assert_eq!(split_part_urls("https://h/model.gguf"), None);
        assert_eq!(split_part_urls("https://h/m-00001-of-00001.gguf"), None);
        let parts = [10, 5, 7];
        assert_eq!(part_at(&parts, 0), (0, 0));
        assert_eq!(part_at(&parts, 9), (0, 9));
        assert_eq!(part_at(&parts, 10), (1, 0));
        assert_eq!(part_at(&parts, 16), (2, 1));
        assert_eq!(part_at(&parts, 22), (2, 7));
    }

    #[test]
    fn chunk_geometry() {
        let mut m = CachedModel::new("u", "m", Some("u"), 2 * CHUNK_BYTES + 5, None);
        assert_eq!(m.total_chunks(), 3);
        assert_eq!(m.chunk_len(0), CHUNK_BYTES);
        assert_eq!(m.chunk_len(2), 5);
        assert_eq!(m.chunk_len(3), 0);
        assert!(!m.all_stored());
        m.chunks = 2;
        assert_eq!(m.stored_bytes(), 2 * CHUNK_BYTES);
        m.chunks = 3;
        assert_eq!(m.stored_bytes(), m.size);
        assert!(m.all_stored());
        // An empty file has no chunks and is trivially stored.
        assert_eq!(CachedModel::new("e", "e", None, 0, None).total_chunks(), 0);
    }

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, 199, 1000))
        );
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 0, 1)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("bytes 5-4/1000"), None);
        assert_eq!(parse_content_range("bytes 0-1000/1000"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn response_plans() {
        let have = 8 << 20;
        let p = plan_response(206, Some(100), Some("bytes 8388608-8388707/8388708"), have);
        assert_eq!(
            p,
            Ok(ResponsePlan {
                total: 8388708,
                body_start: have,
                skip: 0
            })
        );
        // A server that ignores Range resends everything: skip what we have.
        let p = plan_response(200, Some(9 << 20), None, have).unwrap();
        assert_eq!((p.total, p.body_start, p.skip), (9 << 20, 0, have));
        assert!(plan_response(200, None, None, 0).is_err());
        assert!(plan_response(206, None, None, have).is_err());
        assert!(plan_response(206, None, Some("bytes 9000000-9000001/9000002"), 10).is_err());
        assert!(plan_response(404, Some(1), None, 0)
            .unwrap_err()
            .contains("404"));
    }

    #[test]
    fn storage_check() {
        assert_eq!(storage_shortfall("m", 100, 0.0, 1000.0), None);
        let why = storage_shortfall("Big", 1_100_000_000, 600_000_000.0, 1_000_000_000.0).unwrap();
        assert!(why.starts_with("Big needs 1.10 GB, 400.0 MB free"), "{why}");
        // Usage above the quota counts as nothing free.
        assert!(storage_shortfall("m", 1, 2000.0, 1000.0)
            .unwrap()
            .contains("0 B free"));
    }

    #[test]
    fn ids() {
        assert_eq!(file_id("a.gguf", 12), "file:a.gguf:12");
    }
}
