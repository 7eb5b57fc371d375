//! One error type for the whole engine. Every message is a single line a user can act on.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The GGUF bytes are malformed, truncated or hostile.
    #[error("invalid GGUF: {0}")]
    Gguf(String),
    /// The file is fine but uses something this engine does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The model's metadata or tensors do not fit the architecture.
    #[error("model: {0}")]
    Model(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("{0}")]
    Invalid(String),
    /// A GBNF grammar or JSON schema that cannot be used to constrain generation.
    #[error("grammar: {0}")]
    Grammar(String),
    /// The GPU backend failed: no adapter, a shader that does not compile, a lost device.
    #[error("GPU: {0}")]
    Gpu(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `bail!(Kind, "fmt", args)` — return early with a formatted error of the given kind.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::$kind(format!($($arg)*)))
    };
}
