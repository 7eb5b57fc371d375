// Byte access to GGUF blocks stored as-is in `wq: array<u32>` (little-endian words; blocks are not
// 4-byte aligned in general). A decoder fills `dq` with 32 consecutive weights of one row, in f32.
// Prepended to every kernel that reads quantized weights; the kernel declares `wq` and the
// constants BLOCK_BYTES (bytes per block) and SUBS (32-element chunks per block).

var<private> dq: array<f32, 32>;

fn byte_at(off: u32) -> u32 {
    return (wq[off >> 2u] >> ((off & 3u) << 3u)) & 0xffu;
}

// Four bytes starting at any byte offset (the word after is read only when needed).
fn u32_at(off: u32) -> u32 {
    let i = off >> 2u;
    let s = (off & 3u) << 3u;
    if (s == 0u) {
        return wq[i];
    }
    return (wq[i] >> s) | (wq[i + 1u] << (32u - s));
}

// A 16-bit value at an even byte offset (never straddles a word).
fn u16_at(off: u32) -> u32 {
    return (wq[off >> 2u] >> ((off & 2u) << 3u)) & 0xffffu;
}

fn f16_at(off: u32) -> f32 {
    return unpack2x16float(u16_at(off)).x;
}

// Sign-extend a byte.
fn i8_of(b: u32) -> i32 {
    return i32(b << 24u) >> 24u;
}
