//! GGUF v2/v3 reader.
//!
//! ```text
//! file = magic "GGUF" | version u32 | n_tensors u64 | n_kv u64
//!        | n_kv × (key: string, type: u32, value)
//!        | n_tensors × (name: string, n_dims: u32, dims: n_dims × u64, type: u32, offset: u64)
//!        | padding to general.alignment (default 32)
//!        | tensor data (each tensor at data_offset + offset, offset a multiple of the alignment)
//! string = len u64 | len bytes (UTF-8)
//! ```
//! The reader never trusts a count: every length, count, shape and offset is checked against the
//! bytes that remain (or the file size) before anything is allocated or read, so a hostile file can
//! neither make it allocate more than the file holds nor read out of bounds.
//!
//! Two ways in:
//! - [`GgufHeader::parse`] over a prefix of the file (a whole mmap'd file, or the first chunks of a
//!   download); it answers `Ok(None)` when the prefix is too short and more bytes are needed.
//! - [`TensorStream`] takes the rest of the file in chunks of any size, in order, and hands out each
//!   tensor's bytes as soon as they are complete (the browser streams from IndexedDB or File slices).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::quant::{type_name_of_id, GgmlType};

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Dimensions a tensor may have (ggml's GGML_MAX_DIMS).
pub const MAX_DIMS: usize = 4;
/// A header (metadata + tensor infos) larger than this is refused: real ones are under 20 MB
/// (a 256k vocabulary with its merges), and the loader buffers the header before parsing it.
pub const MAX_HEADER_BYTES: u64 = 256 << 20;
/// Memory the parsed metadata may take (each string costs its bytes plus a `String` and the
/// allocator's overhead, ~3x the file's bytes for short strings).
pub const MAX_HEADER_MEMORY: u64 = 512 << 20;
/// What one parsed string costs besides its bytes: the `String` (24) and the allocation's
/// rounding and bookkeeping (~16).
const STRING_OVERHEAD: u64 = 40;

// ----------------------------------------------------------------------------------------------
// Metadata values
// ----------------------------------------------------------------------------------------------

/// A metadata value. Arrays are typed so a 150k-entry vocabulary costs what it holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn type_name(&self) -> &'static str {
        match self {
            Array::U8(_) => "u8",
            Array::I8(_) => "i8",
            Array::U16(_) => "u16",
            Array::I16(_) => "i16",
            Array::U32(_) => "u32",
            Array::I32(_) => "i32",
            Array::U64(_) => "u64",
            Array::I64(_) => "i64",
            Array::F32(_) => "f32",
            Array::F64(_) => "f64",
            Array::Bool(_) => "bool",
            Array::String(_) => "string",
            Array::Array(_) => "array",
        }
    }

    /// Integer elements as i64 (any integer element type), for token-type and id lists.
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        Some(match self {
            Array::U8(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I8(v) => v.iter().map(|&x| x as i64).collect(),
            Array::U16(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I16(v) => v.iter().map(|&x| x as i64).collect(),
            Array::U32(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I32(v) => v.iter().map(|&x| x as i64).collect(),
            Array::U64(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I64(v) => v.clone(),
            _ => return None,
        })
    }
}

impl Value {
    /// Any integer value as u64 (negative values give `None`).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// What a value is, for errors: "-1", "a string", "an array of 3 u32".
    pub fn describe(&self) -> String {
        match self {
            Value::String(_) => "a string".into(),
            Value::Array(a) => format!("an array of {} {}", a.len(), a.type_name()),
            Value::Bool(b) => format!("the boolean {b}"),
            other => other.summary(),
        }
    }

    /// Short description for `chord inspect` (arrays are summarised, not dumped).
    pub fn summary(&self) -> String {
        match self {
            Value::String(s) if s.len() > 80 => {
                let cut: String = s.chars().take(77).collect();
                format!("{cut:?}…")
            }
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) => format!("[{}; {}]", a.type_name(), a.len()),
            Value::U8(v) => v.to_string(),
            Value::I8(v) => v.to_string(),
            Value::U16(v) => v.to_string(),
            Value::I16(v) => v.to_string(),
            Value::U32(v) => v.to_string(),
            Value::I32(v) => v.to_string(),
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::F32(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
        }
    }
}

fn article(what: &str) -> String {
    match what.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {what}"),
        _ => format!("a {what}"),
    }
}

/// Typed metadata with helpers that turn a missing or mistyped key into a clear error.
#[derive(Clone, Debug, Default)]
pub struct Metadata(pub BTreeMap<String, Value>);

impl Metadata {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    pub fn get_array(&self, key: &str) -> Option<&Array> {
        self.get(key).and_then(Value::as_array)
    }

    /// The error for `key` holding the wrong kind of value (or none): "missing" only when it is
    /// absent, else what was found.
    pub fn wrong_type(&self, key: &str, want: &str) -> Error {
        Error::Model(match self.get(key) {
            None => format!("missing required {want} key `{key}`"),
            Some(v) => format!("`{key}` must be {} (found {})", article(want), v.describe()),
        })
    }

    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.get_str(key)
            .ok_or_else(|| self.wrong_type(key, "string"))
    }

    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.get_u64(key)
            .ok_or_else(|| self.wrong_type(key, "non-negative integer"))
    }

    pub fn require_f64(&self, key: &str) -> Result<f64> {
        self.get_f64(key)
            .ok_or_else(|| self.wrong_type(key, "number"))
    }

    pub fn require_array(&self, key: &str) -> Result<&Array> {
        self.get_array(key)
            .ok_or_else(|| self.wrong_type(key, "array"))
    }

    pub fn architecture(&self) -> Result<&str> {
        self.require_str("general.architecture")
    }
}

// ----------------------------------------------------------------------------------------------
// Tensor infos and the header
// ----------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length (contiguous), `dims[1]` the number of rows, …
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// Bytes of tensor data.
    pub size: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

#[derive(Clone, Debug)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: Metadata,
    /// In the order the file lists them.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
    pub file_size: u64,
}

/// Reading past the end of the prefix we were given.
struct Short;

enum ReadErr {
    Short,
    Bad(Error),
}

impl From<Short> for ReadErr {
    fn from(_: Short) -> Self {
        ReadErr::Short
    }
}

impl From<Error> for ReadErr {
    fn from(e: Error) -> Self {
        ReadErr::Bad(e)
    }
}

fn bad(msg: impl Into<String>) -> ReadErr {
    ReadErr::Bad(Error::Gguf(msg.into()))
}

/// Bounds-checked little-endian cursor over the bytes we have.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Size of the whole file: counts are checked against it even when `buf` is only a prefix.
    file_size: u64,
    /// Estimated bytes of memory the values parsed so far take (see [`MAX_HEADER_MEMORY`]).
    memory: u64,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let s = self.buf.get(self.pos..end).ok_or(Short)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], Short> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> std::result::Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> std::result::Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Bytes of the file after the cursor (not only of the prefix), and at most what the header
    /// may still take: a header count is bounded by both.
    fn file_remaining(&self) -> u64 {
        self.file_size
            .min(MAX_HEADER_BYTES)
            .saturating_sub(self.pos as u64)
    }

    /// Account for `bytes` of parsed values in memory.
    fn spend(&mut self, bytes: u64) -> std::result::Result<(), ReadErr> {
        self.memory = self.memory.saturating_add(bytes);
        if self.memory > MAX_HEADER_MEMORY {
            return Err(bad(format!(
                "the metadata would take more than {} MB of memory (at byte {})",
                MAX_HEADER_MEMORY >> 20,
                self.pos
            )));
        }
        Ok(())
    }

    /// Check that `count` items of at least `min_size` bytes each can still fit in the file.
    fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &str,
    ) -> std::result::Result<usize, ReadErr> {
        let need = count.checked_mul(min_size);
        match need {
            Some(n) if n <= self.file_remaining() => usize::try_from(count)
                .map_err(|_| bad(format!("{what} count {count} does not fit in memory"))),
            Some(n) if n <= self.file_size.saturating_sub(self.pos as u64) => Err(bad(format!(
                "{what} count {count} at byte {} would make the header larger than {} MB",
                self.pos,
                MAX_HEADER_BYTES >> 20
            ))),
            _ => Err(bad(format!(
                "{what} count {count} at byte {} exceeds the {} bytes left in the file",
                self.pos,
                self.file_size.saturating_sub(self.pos as u64)
            ))),
        }
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, ReadErr> {
        let len = self.u64()?;
        let n = self.check_count(len, 1, what)?;
        self.spend(len.saturating_add(STRING_OVERHEAD))?;
        let bytes = self.take(n)?;
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            // GGUF strings should be UTF-8; keep going with a lossy copy rather than refuse a model.
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        })
    }

    fn scalars<T, const N: usize>(
        &mut self,
        count: usize,
        f: impl Fn([u8; N]) -> T,
    ) -> std::result::Result<Vec<T>, Short> {
        let bytes = self.take(count.checked_mul(N).ok_or(Short)?)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }

    fn value(&mut self, ty: u32, depth: u32) -> std::result::Result<Value, ReadErr> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(self.array::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => Value::Bool(self.bool()?),
            8 => Value::String(self.string("string length")?),
            9 => Value::Array(self.array_value(depth)?),
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            _ => return Err(bad(format!("unknown metadata value type {ty}"))),
        })
    }

    fn bool(&mut self) -> std::result::Result<bool, ReadErr> {
        match self.array::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(bad(format!("invalid bool byte {b}"))),
        }
    }

    fn array_value(&mut self, depth: u32) -> std::result::Result<Array, ReadErr> {
        if depth > 4 {
            return Err(bad("metadata arrays nested too deeply"));
        }
        let ety = self.u32()?;
        let count = self.u64()?;
        // Smallest encoding of one element: strings and arrays need at least their length prefix.
        let min = match ety {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 => 8,
            9 => 12,
            10..=12 => 8,
            _ => return Err(bad(format!("unknown metadata array element type {ety}"))),
        };
        let n = self.check_count(count, min, "array")?;
        // In memory: a string is accounted for as it is read; other elements take at most 8
        // bytes (an `Array` 32).
        let elem = match ety {
            8 => 0,
            9 => 32,
            _ => 8,
        };
        self.spend(count.saturating_mul(elem))?;
        Ok(match ety {
            0 => Array::U8(self.scalars(n, |[b]: [u8; 1]| b)?),
            1 => Array::I8(self.scalars(n, |[b]: [u8; 1]| b as i8)?),
            2 => Array::U16(self.scalars(n, u16::from_le_bytes)?),
            3 => Array::I16(self.scalars(n, i16::from_le_bytes)?),
            4 => Array::U32(self.scalars(n, u32::from_le_bytes)?),
            5 => Array::I32(self.scalars(n, i32::from_le_bytes)?),
            6 => Array::F32(self.scalars(n, f32::from_le_bytes)?),
            7 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool()?);
                }
                Array::Bool(v)
            }
            8 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.string("string length")?);
                }
                Array::String(v)
            }
            9 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array_value(depth + 1)?);
                }
                Array::Array(v)
            }
            10 => Array::U64(self.scalars(n, u64::from_le_bytes)?),
            11 => Array::I64(self.scalars(n, i64::from_le_bytes)?),
            12 => Array::F64(self.scalars(n, f64::from_le_bytes)?),
            _ => unreachable!("element type checked above"),
        })
    }
}

/// A tensor must fit in this engine's address space: on wasm32 `usize` is 32 bits and no
/// allocation may exceed `isize::MAX` (2 GiB).
fn check_addressable(name: &str, size: u64) -> std::result::Result<(), ReadErr> {
    if usize::try_from(size).is_ok_and(|s| s <= isize::MAX as usize) {
        return Ok(());
    }
    Err(ReadErr::Bad(Error::Unsupported(format!(
        "tensor `{name}` is {:.1} GB: too large for this engine ({})",
        size as f64 / 1e9,
        if cfg!(target_pointer_width = "32") {
            "wasm32"
        } else {
            "its address space"
        }
    ))))
}

impl GgufHeader {
    /// Parse the header from `prefix`, the first bytes of a file of `file_size` bytes.
    ///
    /// `Ok(None)`: the prefix ends inside the header; call again with more bytes.
    /// `Err`: the file is malformed (including truncated, when `prefix` is the whole file).
    pub fn parse(prefix: &[u8], file_size: u64) -> Result<Option<GgufHeader>> {
        let mut c = Cursor {
            buf: prefix,
            pos: 0,
            file_size,
            memory: 0,
        };
        match Self::parse_inner(&mut c) {
            Ok(h) => Ok(Some(h)),
            Err(ReadErr::Bad(e)) => Err(e),
            Err(ReadErr::Short) if (prefix.len() as u64) < file_size => Ok(None),
            Err(ReadErr::Short) => Err(Error::Gguf(format!(
                "file is truncated: the header needs more than its {file_size} bytes"
            ))),
        }
    }

    /// Parse a header when the whole file is in memory (or mapped).
    pub fn parse_complete(bytes: &[u8]) -> Result<GgufHeader> {
        Self::parse(bytes, bytes.len() as u64)?
            .ok_or_else(|| Error::Gguf("file is truncated".into()))
    }

    fn parse_inner(c: &mut Cursor) -> std::result::Result<GgufHeader, ReadErr> {
        let magic = c.array::<4>()?;
        if &magic != MAGIC {
            return Err(bad(format!(
                "not a GGUF file (magic {:02x?}, expected \"GGUF\")",
                magic
            )));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(ReadErr::Bad(Error::Unsupported(format!(
                "GGUF version {version} (this reader handles v2 and v3)"
            ))));
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        // Each key/value needs at least 8 (key len) + 4 (type) + 1 bytes; each tensor info 8+4+4+8.
        let n_kv = c.check_count(n_kv, 13, "metadata key/value")?;
        let n_tensors = c.check_count(n_tensors, 24, "tensor")?;

        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string("key length")?;
            let ty = c.u32()?;
            let v = c.value(ty, 0)?;
            metadata.insert(key, v);
        }
        let metadata = Metadata(metadata);

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
                _ => return Err(bad(format!("invalid general.alignment {}", v.summary()))),
            },
        };

        let mut tensors = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("tensor name length")?;
            let n_dims = c.u32()? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(bad(format!(
                    "tensor `{name}` has {n_dims} dimensions (1..=4 allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(c.u64()?);
            }
            let ty_id = c.u32()?;
            let offset = c.u64()?;
            let ty = GgmlType::from_id(ty_id).map_err(|_| {
                ReadErr::Bad(Error::Unsupported(format!(
                    "tensor `{name}` has type {} (id {ty_id}), which this engine does not run",
                    type_name_of_id(ty_id)
                )))
            })?;
            let n_el = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad(format!("tensor `{name}` shape {dims:?} overflows")))?;
            if dims.contains(&0) {
                return Err(bad(format!(
                    "tensor `{name}` has an empty dimension {dims:?}"
                )));
            }
            let row_bytes = ty.row_bytes(dims[0]).ok_or_else(|| {
                bad(format!(
                    "tensor `{name}` row length {} is not a multiple of the {} block size {}",
                    dims[0],
                    ty.name(),
                    ty.block_size()
                ))
            })?;
            let size = row_bytes
                .checked_mul(n_el / dims[0])
                .ok_or_else(|| bad(format!("tensor `{name}` size overflows")))?;
            check_addressable(&name, size)?;
            if offset % alignment != 0 {
                return Err(bad(format!(
                    "tensor `{name}` offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
                size,
            });
        }

        let mut data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        if tensors.is_empty() && data_offset > c.file_size {
            // A file without tensors (llama.cpp's vocab-only files) may end without the padding
            // of its empty data section; llama.cpp reads it.
            data_offset = c.file_size;
        }
        let data_len = c.file_size.checked_sub(data_offset).ok_or_else(|| {
            bad(format!(
                "file is truncated: data section would start at byte {data_offset} of {}",
                c.file_size
            ))
        })?;
        // Every tensor inside the file, and no two tensors overlapping.
        let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(tensors.len());
        // The file size the tensor table asks for (saturating: a wrapped offset is reported below).
        let needed = tensors
            .iter()
            .map(|t| data_offset.saturating_add(t.offset.saturating_add(t.size)))
            .max()
            .unwrap_or(data_offset);
        for t in &tensors {
            let end = t.offset.checked_add(t.size).filter(|&e| e <= data_len).ok_or_else(|| {
                bad(format!(
                    "tensor `{}` ({} bytes at data offset {}) runs past the end of the file ({} data bytes; \
                     the tensors need a file of {needed} bytes, this one has {})",
                    t.name, t.size, t.offset, data_len, c.file_size
                ))
            })?;
            spans.push((t.offset, end, &t.name));
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(bad(format!(
                    "tensors `{}` and `{}` overlap",
                    w[0].2, w[1].2
                )));
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(tensors.len());
        for t in &tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(bad(format!("tensor `{}` appears twice", t.name)));
            }
        }

        Ok(GgufHeader {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_size: c.file_size,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Absolute byte range of a tensor in the file (validated at parse time).
    pub fn tensor_range(&self, t: &TensorInfo) -> std::ops::Range<usize> {
        let start = (self.data_offset + t.offset) as usize;
        start..start + t.size as usize
    }

    /// Sum of all tensor bytes.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.size).sum()
    }

    /// Indices of the tensors in the order their bytes appear in the file.
    pub fn file_order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.tensors.len()).collect();
        idx.sort_by_key(|&i| self.tensors[i].offset);
        idx
    }
}

// ----------------------------------------------------------------------------------------------
// Streaming tensors out of chunks
// ----------------------------------------------------------------------------------------------

/// Feeds file bytes in order, in chunks of any size, and hands out every tensor once complete.
///
/// Only the tensor being assembled is buffered: memory stays at one tensor, not the file. The
/// stream keeps the tensor infos only (not the metadata: a vocabulary is not copied).
pub struct TensorStream {
    /// The tensors in the order of their bytes in the file.
    tensors: Vec<TensorInfo>,
    next: usize,
    data_offset: u64,
    /// Absolute file position of the next byte to be pushed.
    pos: u64,
    buf: Vec<u8>,
}

impl TensorStream {
    /// `start` is the absolute position of the first byte that will be pushed (0 to push the
    /// whole file again, or the prefix length used for the header).
    pub fn new(header: &GgufHeader, start: u64) -> Self {
        TensorStream {
            tensors: header
                .file_order()
                .into_iter()
                .map(|i| header.tensors[i].clone())
                .collect(),
            next: 0,
            data_offset: header.data_offset,
            pos: start,
            buf: Vec::new(),
        }
    }

    /// True once every tensor was handed out.
    pub fn is_done(&self) -> bool {
        self.next == self.tensors.len()
    }

    /// Push the next chunk; `on_tensor` gets each tensor whose bytes are now complete (borrowed
    /// from the chunk when it lies inside it, owned when it was assembled from several).
    /// Positions are u64 throughout: a file (or a tensor) may be larger than wasm32's `usize`.
    pub fn push(
        &mut self,
        mut chunk: &[u8],
        mut on_tensor: impl FnMut(&TensorInfo, Cow<'_, [u8]>) -> Result<()>,
    ) -> Result<()> {
        while !chunk.is_empty() && self.next < self.tensors.len() {
            let t = &self.tensors[self.next];
            let start = self.data_offset + t.offset;
            let end = start + t.size;
            if self.pos < start {
                // Padding or bytes not owned by a tensor: skip.
                let skip = (start - self.pos).min(chunk.len() as u64) as usize;
                chunk = &chunk[skip..];
                self.pos += skip as u64;
                continue;
            }
            if self.pos >= end {
                // Started past this tensor (it was in the prefix): only happens with a bad `start`.
                return Err(Error::Invalid(format!(
                    "stream started at byte {} after tensor `{}` began",
                    self.pos, t.name
                )));
            }
            // `take` ≤ chunk.len(), so the conversion back to usize cannot truncate.
            let take = (end - self.pos).min(chunk.len() as u64) as usize;
            if self.buf.is_empty() && take as u64 == t.size {
                // The whole tensor is inside this chunk: no copy here.
                on_tensor(t, Cow::Borrowed(&chunk[..take]))?;
            } else {
                if self.buf.is_empty() {
                    // The header checked that every tensor is addressable (check_addressable).
                    let size = usize::try_from(t.size).map_err(|_| {
                        Error::Unsupported(format!("tensor `{}` is too large", t.name))
                    })?;
                    self.buf.try_reserve_exact(size).map_err(|_| {
                        Error::Invalid(format!(
                            "out of memory for tensor `{}` ({} bytes)",
                            t.name, t.size
                        ))
                    })?;
                }
                self.buf.extend_from_slice(&chunk[..take]);
                if self.buf.len() as u64 == t.size {
                    // Assembled across chunks: hand the buffer over instead of copying it.
                    on_tensor(t, Cow::Owned(std::mem::take(&mut self.buf)))?;
                }
            }
            chunk = &chunk[take..];
            self.pos += take as u64;
            if self.pos == end {
                self.next += 1;
            }
        }
        Ok(())
    }

    /// Call after the last chunk: an error if the file ended before every tensor was complete.
    pub fn finish(&self) -> Result<()> {
        if let Some(t) = self.tensors.get(self.next) {
            return Err(Error::Gguf(format!(
                "file ended at byte {} before tensor `{}` was complete",
                self.pos, t.name
            )));
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------------
// Writing (tests and tools build small GGUF files with this)
// ----------------------------------------------------------------------------------------------

/// Minimal GGUF v3 writer: enough to build test files, including deliberately broken ones.
#[derive(Default)]
pub struct GgufWriter {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn put_str(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
        buf.extend_from_slice(s.as_bytes());
    }

    /// Add a key with a raw, already encoded value of type id `ty`.
    pub fn raw_kv(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        Self::put_str(&mut self.kv, key);
        self.kv.extend_from_slice(&ty.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.n_kv += 1;
        self
    }

    pub fn str_kv(&mut self, key: &str, v: &str) -> &mut Self {
        let mut b = Vec::new();
        Self::put_str(&mut b, v);
        self.raw_kv(key, 8, &b)
    }

    pub fn u32_kv(&mut self, key: &str, v: u32) -> &mut Self {
        self.raw_kv(key, 4, &v.to_le_bytes())
    }

    pub fn f32_kv(&mut self, key: &str, v: f32) -> &mut Self {
        self.raw_kv(key, 6, &v.to_le_bytes())
    }

    pub fn bool_kv(&mut self, key: &str, v: bool) -> &mut Self {
        self.raw_kv(key, 7, &[v as u8])
    }

    pub fn str_array_kv(&mut self, key: &str, v: &[&str]) -> &mut Self {
        let mut b = Vec::new();
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for s in v {
            Self::put_str(&mut b, s);
        }
        self.raw_kv(key, 9, &b)
    }

    pub fn f32_array_kv(&mut self, key: &str, v: &[f32]) -> &mut Self {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        b.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            b.extend_from_slice(&x.to_le_bytes());
        }
        self.raw_kv(key, 9, &b)
    }

    pub fn i32_array_kv(&mut self, key: &str, v: &[i32]) -> &mut Self {
        let mut b = Vec::new();
        b.extend_from_slice(&5u32.to_le_bytes());
        b.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            b.extend_from_slice(&x.to_le_bytes());
        }
        self.raw_kv(key, 9, &b)
    }

    /// Add a key with any metadata value.
    pub fn value_kv(&mut self, key: &str, v: &Value) -> &mut Self {
        let mut b = Vec::new();
        let ty = Self::encode_value(&mut b, v);
        self.raw_kv(key, ty, &b)
    }

    fn encode_value(b: &mut Vec<u8>, v: &Value) -> u32 {
        match v {
            Value::U8(x) => {
                b.push(*x);
                0
            }
            Value::I8(x) => {
                b.push(*x as u8);
                1
            }
            Value::U16(x) => {
                b.extend_from_slice(&x.to_le_bytes());
                2
            }
            Value::I16(x) => {
                b.extend_from_slice(&x.to_le_bytes());
                3
            }
            Value::U32(x) => {
                b.extend_from_slice(&x.to_le_bytes());
                4
            }
            Value::I32(x) => {
                b.extend_from_slice(&x.to_le_bytes());
                5
            }
            Value::F32(x) => {
                b.extend_from_slice(&x.to_le_bytes());
                6
            }
            Value::Bool(x) => {
                b.push(*x as u8);
                7
            }
            Value::String(s) => {
                Self::put_str(b, s);
                8
            }
            Value::Array(a) => {
                Self::encode_array(b, a);
                9
            }
            Value::U64(x) => {
                b.extend_from_slice(&x.to_le_bytes());
                10
            }
            Value::I64(x) => {
                b.extend_from_slice(&x.to_le_bytes());
                11
            }
            Value::F64(x) => {
                b.extend_from_slice(&x.to_le_bytes());
                12
            }
        }
    }

    fn encode_array(b: &mut Vec<u8>, a: &Array) {
        fn put<T>(b: &mut Vec<u8>, ty: u32, v: &[T], f: impl Fn(&mut Vec<u8>, &T)) {
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&(v.len() as u64).to_le_bytes());
            for x in v {
                f(b, x);
            }
        }
        match a {
            Array::U8(v) => put(b, 0, v, |b, x| b.push(*x)),
            Array::I8(v) => put(b, 1, v, |b, x| b.push(*x as u8)),
            Array::U16(v) => put(b, 2, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
            Array::I16(v) => put(b, 3, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
            Array::U32(v) => put(b, 4, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
            Array::I32(v) => put(b, 5, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
            Array::F32(v) => put(b, 6, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
            Array::Bool(v) => put(b, 7, v, |b, x| b.push(*x as u8)),
            Array::String(v) => put(b, 8, v, |b, x| Self::put_str(b, x)),
            Array::Array(v) => put(b, 9, v, Self::encode_array_inner),
            Array::U64(v) => put(b, 10, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
            Array::I64(v) => put(b, 11, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
            Array::F64(v) => put(b, 12, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        }
    }

    // Nested arrays are written without the outer type/count (those come from `put`).
    fn encode_array_inner(b: &mut Vec<u8>, a: &Array) {
        Self::encode_array(b, a)
    }

    /// A writer holding a copy of a parsed file (`bytes` is the whole file), for tools and tests
    /// that derive variants of a real model. `keep_key` / `keep_tensor` filter what is copied.
    pub fn copy_of(
        header: &GgufHeader,
        bytes: &[u8],
        keep_key: impl Fn(&str) -> bool,
        keep_tensor: impl Fn(&TensorInfo) -> bool,
    ) -> Self {
        let mut w = GgufWriter::new();
        for (k, v) in &header.metadata.0 {
            if keep_key(k) && k != "general.alignment" {
                w.value_kv(k, v);
            }
        }
        for i in header.file_order() {
            let t = &header.tensors[i];
            if keep_tensor(t) {
                let data = bytes[header.tensor_range(t)].to_vec();
                w.tensor(&t.name, &t.dims, t.ty.id(), data);
            }
        }
        w
    }

    /// Add a tensor with raw data; `ty` is a ggml type id (unchecked, so tests can lie).
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, data: Vec<u8>) -> &mut Self {
        self.tensors
            .push((name.to_owned(), dims.to_vec(), ty, data));
        self
    }

    pub fn f32_tensor(&mut self, name: &str, dims: &[u64], data: &[f32]) -> &mut Self {
        let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.tensor(name, dims, 0, bytes)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        let align = DEFAULT_ALIGNMENT;
        let mut off = 0u64;
        let mut offsets = Vec::new();
        for (name, dims, ty, data) in &self.tensors {
            Self::put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
            offsets.push(off);
            off = (off + data.len() as u64).div_ceil(align) * align;
        }
        let data_start = (out.len() as u64).div_ceil(align) * align;
        out.resize(data_start as usize, 0);
        for ((_, _, _, data), o) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + o) as usize, 0);
            out.extend_from_slice(data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = GgufWriter::new();
        w.str_kv("general.architecture", "llama")
            .u32_kv("llama.block_count", 2)
            .str_array_kv("tokenizer.ggml.tokens", &["a", "b", "ccc"])
            .f32_array_kv("tokenizer.ggml.scores", &[0.5, -1.0, 2.0])
            .f32_tensor("a", &[4], &[1.0, 2.0, 3.0, 4.0])
            .f32_tensor("b", &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        w.to_bytes()
    }

    #[test]
    fn parses_metadata_and_tensors() {
        let bytes = sample();
        let h = GgufHeader::parse_complete(&bytes).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.metadata.architecture().unwrap(), "llama");
        assert_eq!(h.metadata.get_u64("llama.block_count"), Some(2));
        match h.metadata.get_array("tokenizer.ggml.tokens") {
            Some(Array::String(v)) => assert_eq!(v, &["a", "b", "ccc"]),
            other => panic!("{other:?}"),
        }
        let b = h.tensor("b").unwrap();
        assert_eq!(b.dims, vec![2, 3]);
        assert_eq!(b.size, 24);
        let r = h.tensor_range(b);
        let vals: Vec<f32> = bytes[r]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(vals, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn prefix_asks_for_more_then_parses() {
        let bytes = sample();
        let h = GgufHeader::parse_complete(&bytes).unwrap();
        for cut in [0, 3, 10, 40, 100] {
            assert!(GgufHeader::parse(&bytes[..cut], bytes.len() as u64)
                .unwrap()
                .is_none());
        }
        assert!(
            GgufHeader::parse(&bytes[..h.data_offset as usize], bytes.len() as u64)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn stream_in_tiny_chunks_gives_every_tensor_in_order() {
        let bytes = sample();
        let h = GgufHeader::parse_complete(&bytes).unwrap();
        for chunk in [1, 3, 7, 64, bytes.len()] {
            let mut s = TensorStream::new(&h, 0);
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                s.push(c, |t, d| {
                    got.push((t.name.clone(), d.into_owned()));
                    Ok(())
                })
                .unwrap();
            }
            s.finish().unwrap();
            assert_eq!(got.len(), 2);
            for (name, data) in got {
                assert_eq!(&bytes[h.tensor_range(h.tensor(&name).unwrap())], &data[..]);
            }
        }
        // Cut short: finish() reports it.
        let mut s = TensorStream::new(&h, 0);
        s.push(&bytes[..bytes.len() - 4], |_, _| Ok(())).unwrap();
        assert!(s.finish().is_err());
    }

    #[test]
    fn hostile_counts_are_refused_without_allocating() {
        // A string array claiming 2^60 entries.
        let mut w = GgufWriter::new();
        let mut v = Vec::new();
        v.extend_from_slice(&8u32.to_le_bytes());
        v.extend_from_slice(&(1u64 << 60).to_le_bytes());
        w.raw_kv("tokenizer.ggml.tokens", 9, &v);
        let e = GgufHeader::parse_complete(&w.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("array count 1152921504606846976"), "{e}");

        // A tensor count of 2^60.
        let mut b = sample();
        b[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let e = GgufHeader::parse_complete(&b).unwrap_err().to_string();
        assert!(e.contains("tensor count"), "{e}");
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let e = GgufHeader::parse_complete(b"GGML\x03\0\0\0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a GGUF file"), "{e}");

        let bytes = sample();
        for cut in [6, 30, 50, 120] {
            let e = GgufHeader::parse_complete(&bytes[..cut])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("truncated") || e.contains("bytes left in the file"),
                "{cut}: {e}"
            );
        }

        let mut w = GgufWriter::new();
        w.tensor("t", &[32], 16, vec![0; 66]);
        let e = GgufHeader::parse_complete(&w.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("IQ2_XXS"), "{e}");

        let mut w = GgufWriter::new();
        w.f32_tensor("t", &[4], &[0.0; 4]);
        let mut b = w.to_bytes();
        let len = b.len();
        b.truncate(len - 8); // tensor data cut short
        let e = GgufHeader::parse_complete(&b).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
    }
}
