//! The models offered in the picker. The default one is served by this site (`scripts/serve.py`
//! serves `models/` at `/models/`); the others are GGUF files on Hugging Face (sizes approximate:
//! the download's Content-Length is the real one).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogModel {
    pub id: &'static str,
    pub name: &'static str,
    pub params: &'static str,
    pub quant: &'static str,
    /// Approximate download size in bytes (the real size comes from Content-Length).
    pub size: u64,
    pub url: &'static str,
    /// Served by this site (works offline once the page is here).
    pub local: bool,
    /// sha256 of the file where we know it (checked before the cache entry is marked complete).
    pub sha256: Option<&'static str>,
    /// The weights' license, as its publisher names it.
    pub license: &'static str,
}

pub const DEFAULT_MODEL: &str = "smollm2-135m";

pub const CATALOG: &[CatalogModel] = &[
    CatalogModel {
        id: "smollm2-135m",
        name: "SmolLM2 135M Instruct",
        params: "135M",
        quant: "Q4_1",
        size: 98_362_432,
        url: "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        local: true,
        license: "Apache-2.0",
        sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    },
    CatalogModel {
        id: "smollm2-360m",
        name: "SmolLM2 360M Instruct",
        params: "362M",
        quant: "Q4_K_M",
        size: 271_000_000,
        url: "https://huggingface.co/bartowski/SmolLM2-360M-Instruct-GGUF/resolve/main/SmolLM2-360M-Instruct-Q4_K_M.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
    CatalogModel {
        id: "smollm2-1.7b",
        name: "SmolLM2 1.7B Instruct",
        params: "1.7B",
        quant: "Q4_K_M",
        size: 1_060_000_000,
        url: "https://huggingface.co/bartowski/SmolLM2-1.7B-Instruct-GGUF/resolve/main/SmolLM2-1.7B-Instruct-Q4_K_M.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
    CatalogModel {
        id: "qwen2.5-0.5b",
        name: "Qwen2.5 0.5B Instruct",
        params: "494M",
        quant: "Q4_K_M",
        size: 491_000_000,
        url: "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
    CatalogModel {
        id: "qwen2.5-1.5b",
        name: "Qwen2.5 1.5B Instruct",
        params: "1.5B",
        quant: "Q4_K_M",
        size: 1_120_000_000,
        url: "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF/resolve/main/qwen2.5-1.5b-instruct-q4_k_m.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
    CatalogModel {
        id: "gemma3-270m",
        name: "Gemma 3 270M IT",
        params: "268M",
        quant: "Q4_K_M",
        size: 253_113_024,
        url: "https://huggingface.co/unsloth/gemma-3-270m-it-GGUF/resolve/main/gemma-3-270m-it-Q4_K_M.gguf",
        local: false,
        license: "Gemma Terms of Use",
        sha256: None,
    },
    CatalogModel {
        id: "gemma3-1b",
        name: "Gemma 3 1B IT",
        params: "1.0B",
        quant: "Q4_K_M",
        size: 806_000_000,
        url: "https://huggingface.co/unsloth/gemma-3-1b-it-GGUF/resolve/main/gemma-3-1b-it-Q4_K_M.gguf",
        local: false,
        license: "Gemma Terms of Use",
        sha256: None,
    },
    CatalogModel {
        id: "tinyllama-1.1b",
        name: "TinyLlama 1.1B Chat",
        params: "1.1B",
        quant: "Q4_K_M",
        size: 669_000_000,
        url: "https://huggingface.co/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/resolve/main/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
    CatalogModel {
        id: "qwen3-0.6b",
        name: "Qwen3 0.6B",
        params: "0.6B",
        quant: "Q8_0",
        size: 639_000_000,
        url: "https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q8_0.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
    CatalogModel {
        id: "qwen3-1.7b",
        name: "Qwen3 1.7B",
        params: "1.7B",
        quant: "Q8_0",
        size: 1_830_000_000,
        url: "https://huggingface.co/Qwen/Qwen3-1.7B-GGUF/resolve/main/Qwen3-1.7B-Q8_0.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
    CatalogModel {
        id: "qwen3-4b",
        name: "Qwen3 4B",
        params: "4.0B",
        quant: "Q4_K_M",
        size: 2_500_000_000,
        url: "https://huggingface.co/Qwen/Qwen3-4B-GGUF/resolve/main/Qwen3-4B-Q4_K_M.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
    CatalogModel {
        id: "llama3.2-1b",
        name: "Llama 3.2 1B Instruct",
        params: "1.2B",
        quant: "Q4_K_M",
        size: 808_000_000,
        url: "https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        local: false,
        license: "Llama 3.2 Community License",
        sha256: None,
    },
    CatalogModel {
        id: "llama3.2-3b",
        name: "Llama 3.2 3B Instruct",
        params: "3.2B",
        quant: "Q4_K_M",
        size: 2_020_000_000,
        url: "https://huggingface.co/bartowski/Llama-3.2-3B-Instruct-GGUF/resolve/main/Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        local: false,
        license: "Llama 3.2 Community License",
        sha256: None,
    },
    CatalogModel {
        id: "gemma3-4b",
        name: "Gemma 3 4B IT",
        params: "3.9B",
        quant: "Q4_K_M",
        size: 2_490_000_000,
        url: "https://huggingface.co/unsloth/gemma-3-4b-it-GGUF/resolve/main/gemma-3-4b-it-Q4_K_M.gguf",
        local: false,
        license: "Gemma Terms of Use",
        sha256: None,
    },
    CatalogModel {
        id: "phi4-mini",
        name: "Phi-4-mini Instruct",
        params: "3.8B",
        quant: "Q4_K_M",
        size: 2_490_000_000,
        url: "https://huggingface.co/unsloth/Phi-4-mini-instruct-GGUF/resolve/main/Phi-4-mini-instruct-Q4_K_M.gguf",
        local: false,
        license: "MIT",
        sha256: None,
    },
    CatalogModel {
        id: "smollm3-3b",
        name: "SmolLM3 3B",
        params: "3.1B",
        quant: "Q4_K_M",
        size: 1_920_000_000,
        url: "https://huggingface.co/unsloth/SmolLM3-3B-GGUF/resolve/main/SmolLM3-3B-Q4_K_M.gguf",
        local: false,
        license: "Apache-2.0",
        sha256: None,
    },
];

pub fn find(id: &str) -> Option<&'static CatalogModel> {
    CATALOG.iter().find(|m| m.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sane() {
        assert!(find(DEFAULT_MODEL).is_some_and(|m| m.local));
        for m in CATALOG {
            assert!(m.url.ends_with(".gguf"), "{}", m.id);
            assert!(m.local || m.url.starts_with("https://"), "{}", m.id);
            assert_eq!(CATALOG.iter().filter(|o| o.id == m.id).count(), 1);
            assert!(!m.license.is_empty(), "{}: license", m.id);
        }
    }
}
