//! "Will it fit?" before a download: what a model needs (its weights, its largest tensor, the KV
//! cache at the context in use — from its GGUF header, read with a Range request) against what
//! this browser has (the WebGPU adapter's buffer limit, the CPU engine's 4 GB of wasm memory,
//! `navigator.deviceMemory`, the storage left to the site).

use inference::gguf::GgufHeader;
use inference::model::HParams;

use crate::format;

/// The CPU engine's ceiling: wasm32 addresses 4 GiB, and the engine, its buffers and the browser's
/// own share need some of it.
pub const CPU_ENGINE_BYTES: u64 = 3584 << 20;
/// Working memory beside the weights and the KV cache (activations, scratch, the tokenizer).
const OVERHEAD_BYTES: u64 = 192 << 20;

/// What a model needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Needs {
    pub file: u64,
    /// Bytes of all tensors.
    pub weights: u64,
    pub largest_tensor: u64,
    /// K and V for `n_ctx` tokens, f32, every layer.
    pub kv_cache: u64,
    pub n_ctx: u64,
}

impl Needs {
    /// From a parsed header, at the context the page will use (`n_ctx`, at most the model's).
    pub fn from_header(header: &GgufHeader, file_size: u64, n_ctx: u64) -> Result<Needs, String> {
        let hp = HParams::from_metadata(&header.metadata).map_err(|e| e.to_string())?;
        let n_ctx = n_ctx.min(hp.n_ctx_train as u64).max(1);
        let weights = header.tensors.iter().map(|t| t.size).sum();
        let largest_tensor = header.tensors.iter().map(|t| t.size).max().unwrap_or(0);
        let kv_cache = 2u64
            .saturating_mul(hp.n_layer as u64)
            .saturating_mul(n_ctx)
            .saturating_mul(hp.kv_dim() as u64)
            .saturating_mul(4);
        Ok(Needs {
            file: file_size,
            weights,
            largest_tensor,
            kv_cache,
            n_ctx,
        })
    }

    /// Memory the engine needs to run it.
    pub fn memory(&self) -> u64 {
        self.weights
            .saturating_add(self.kv_cache)
            .saturating_add(OVERHEAD_BYTES)
    }
}

/// What this browser offers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// A hardware WebGPU adapter's `maxBufferSize` (`None`: no WebGPU, or only a software one).
    pub gpu_max_buffer: Option<u64>,
    /// `navigator.deviceMemory` in bytes (Chrome reports at most 8 GB).
    pub device_memory: Option<u64>,
    /// Storage the site may still use (quota − usage).
    pub storage_free: Option<u64>,
    /// Bytes of this model already stored (a partial download).
    pub already_stored: u64,
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Runs on WebGPU here.
    WebGpu,
    /// Runs on the CPU engine (no hardware WebGPU here).
    Cpu,
    /// WebGPU is here but a tensor exceeds its buffer limit: the CPU engine runs it.
    TooLargeForWebGpu,
    /// Neither engine can hold it in this browser.
    TooLarge,
    /// The download does not fit the storage left to the site.
    NotEnoughStorage,
}

impl Fit {
    /// Short key for `data-fit` (tests, CSS).
    pub fn key(self) -> &'static str {
        match self {
            Fit::WebGpu => "webgpu",
            Fit::Cpu => "cpu",
            Fit::TooLargeForWebGpu => "cpu-only",
            Fit::TooLarge => "too-large",
            Fit::NotEnoughStorage => "no-storage",
        }
    }

    /// Whether the model can run here (a download is worth it).
    pub fn runs(self) -> bool {
        matches!(self, Fit::WebGpu | Fit::Cpu | Fit::TooLargeForWebGpu)
    }
}

/// The verdict and one sentence with the numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub fit: Fit,
    pub sentence: String,
}

/// Judge `needs` against `limits`, for a model called `name`.
pub fn judge(name: &str, needs: &Needs, limits: &Limits) -> Report {
    let b = format::bytes;
    let what = format!(
        "{} of weights + {} of KV cache at {} tokens",
        b(needs.weights),
        b(needs.kv_cache),
        crate::transcript::thousands(needs.n_ctx)
    );
    let to_download = needs.file.saturating_sub(limits.already_stored);
    if let Some(free) = limits.storage_free {
        if to_download > free {
            return Report {
                fit: Fit::NotEnoughStorage,
                sentence: format!(
                    "Not enough storage: {name} needs {}, {} free in this browser's storage for \
                     this site: delete stored models or free disk space, then try again.",
                    b(to_download),
                    b(free)
                ),
            };
        }
    }
    let memory = needs.memory();
    let device_ok = limits.device_memory.is_none_or(|m| memory <= m);
    let cpu_ok = memory <= CPU_ENGINE_BYTES && device_ok;
    let gpu_ok = limits
        .gpu_max_buffer
        .is_some_and(|max| needs.largest_tensor <= max)
        && device_ok;
    let (fit, verdict) = if gpu_ok {
        (Fit::WebGpu, "fits on WebGPU here".to_owned())
    } else if cpu_ok && limits.gpu_max_buffer.is_some() {
        (
            Fit::TooLargeForWebGpu,
            format!(
                "too large for WebGPU here (a {} tensor, the GPU's buffer limit is {}): the CPU \
                 engine will run it",
                b(needs.largest_tensor),
                b(limits.gpu_max_buffer.unwrap_or(0))
            ),
        )
    } else if cpu_ok {
        (
            Fit::Cpu,
            "fits on the CPU engine (no hardware WebGPU here)".to_owned(),
        )
    } else if !device_ok {
        (
            Fit::TooLarge,
            format!(
                "too large for this device ({} of memory needed, it reports {})",
                b(memory),
                b(limits.device_memory.unwrap_or(0))
            ),
        )
    } else {
        (
            Fit::TooLarge,
            format!(
                "too large for the CPU engine in this browser (it needs {}; wasm memory is 4 GB) \
                 and no WebGPU adapter here can hold it",
                b(memory)
            ),
        )
    };
    Report {
        fit,
        sentence: format!("{name}: {what} — {verdict}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(weights: u64, largest: u64) -> Needs {
        Needs {
            file: weights + 2_000_000,
            weights,
            largest_tensor: largest,
            kv_cache: 50_000_000,
            n_ctx: 2048,
        }
    }

    #[test]
    fn verdicts() {
        let small = needs(100_000_000, 30_000_000);
        let gpu = Limits {
            gpu_max_buffer: Some(2 << 30),
            ..Limits::default()
        };
        let r = judge("m", &small, &gpu);
        assert_eq!(r.fit, Fit::WebGpu);
        assert_eq!(
            r.sentence,
            "m: 100.0 MB of weights + 50.0 MB of KV cache at 2,048 tokens — fits on WebGPU here."
        );
        assert_eq!(judge("m", &small, &Limits::default()).fit, Fit::Cpu);
        // A 7B Q4_K_M: 4.4 GB of weights, a 0.4 GB tensor.
        let big = needs(4_400_000_000, 410_000_000);
        assert_eq!(judge("m", &big, &gpu).fit, Fit::WebGpu);
        let r = judge("m", &big, &Limits::default());
        assert_eq!(r.fit, Fit::TooLarge);
        assert!(r.sentence.contains("wasm memory is 4 GB"), "{}", r.sentence);
        let small_gpu = Limits {
            gpu_max_buffer: Some(256 << 20),
            ..Limits::default()
        };
        assert_eq!(judge("m", &big, &small_gpu).fit, Fit::TooLarge);
        assert_eq!(
            judge("m", &needs(1_000_000_000, 300_000_000), &small_gpu).fit,
            Fit::TooLargeForWebGpu
        );
        let phone = Limits {
            device_memory: Some(2 << 30),
            ..gpu.clone()
        };
        assert_eq!(judge("m", &big, &phone).fit, Fit::TooLarge);
        let full = Limits {
            storage_free: Some(1_000_000),
            ..gpu
        };
        let r = judge("m.gguf", &small, &full);
        assert_eq!(r.fit, Fit::NotEnoughStorage);
        assert!(
            r.sentence.contains("needs 102.0 MB, 1.0 MB free"),
            "{}",
            r.sentence
        );
    }
}
