//! Structured output: generation constrained by a grammar.
//!
//! [`Grammar`] is llama.cpp's GBNF ([`Grammar::gbnf`]), compiled from a JSON Schema
//! ([`Grammar::json_schema`], `response_format: {type: "json_schema"}`) or the generic JSON
//! object grammar ([`Grammar::json_object`]). A [`Matcher`] follows one generation over a
//! [`TokenTable`] (the vocabulary, computed once per model) and says which tokens may come
//! next; [`crate::engine::Session::generate_constrained`] runs it in the generation loop.

mod check;
pub mod gbnf;
pub mod json_schema;
pub mod matcher;

use std::sync::Arc;

pub use gbnf::Grammar;
pub use matcher::{Matcher, TokenTable};

use crate::error::Result;

impl Grammar {
    /// Parse GBNF text whose start rule is `root`.
    pub fn gbnf(src: &str) -> Result<Grammar> {
        gbnf::parse(src, "root")
    }

    /// Compile a JSON Schema (the supported subset: see [`json_schema`]).
    pub fn json_schema(schema: &serde_json::Value) -> Result<Grammar> {
        gbnf::parse(&json_schema::schema_to_gbnf(schema)?, "root")
    }

    /// Any JSON object.
    pub fn json_object() -> Grammar {
        // The built-in grammar is tested to parse; a failure here is a bug, not bad input.
        gbnf::parse(&json_schema::json_object_gbnf(), "root")
            .expect("the built-in JSON grammar parses")
    }

    /// A matcher at the start of this grammar.
    pub fn matcher(self: &Arc<Self>, table: &Arc<TokenTable>) -> Matcher {
        Matcher::new(self.clone(), table.clone())
    }
}
