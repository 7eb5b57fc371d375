// Decoders for the 32-element block types (SUBS = 1), `bo` = byte offset of the block:
//   Q4_0 (18 B): d f16, qs[16]            w = (nibble - 8) * d      (low nibbles: 0..15, high: 16..31)
//   Q4_1 (20 B): d f16, m f16, qs[16]     w = nibble * d + m
//   Q5_0 (22 B): d f16, qh u32, qs[16]    w = (nibble | bit(qh) << 4 - 16) * d
//   Q5_1 (24 B): d f16, m f16, qh u32, qs[16]   w = (nibble | bit << 4) * d + m
//   Q8_0 (34 B): d f16, qs[32] i8         w = q * d

fn decode_q4_0(bo: u32, c: u32) {
    let d = f16_at(bo);
    for (var i = 0u; i < 4u; i++) {
        let q = u32_at(bo + 2u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let b = (q >> (8u * k)) & 0xffu;
            dq[4u * i + k] = (f32(b & 0xfu) - 8.0) * d;
            dq[4u * i + k + 16u] = (f32(b >> 4u) - 8.0) * d;
        }
    }
}

fn decode_q4_1(bo: u32, c: u32) {
    let d = f16_at(bo);
    let m = f16_at(bo + 2u);
    for (var i = 0u; i < 4u; i++) {
        let q = u32_at(bo + 4u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let b = (q >> (8u * k)) & 0xffu;
            dq[4u * i + k] = f32(b & 0xfu) * d + m;
            dq[4u * i + k + 16u] = f32(b >> 4u) * d + m;
        }
    }
}

fn decode_q5_0(bo: u32, c: u32) {
    let d = f16_at(bo);
    let qh = u32_at(bo + 2u);
    for (var i = 0u; i < 4u; i++) {
        let q = u32_at(bo + 6u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let j = 4u * i + k;
            let b = (q >> (8u * k)) & 0xffu;
            let h0 = ((qh >> j) << 4u) & 0x10u;
            let h1 = (qh >> (j + 12u)) & 0x10u;
            dq[j] = (f32((b & 0xfu) | h0) - 16.0) * d;
            dq[j + 16u] = (f32((b >> 4u) | h1) - 16.0) * d;
        }
    }
}

fn decode_q5_1(bo: u32, c: u32) {
    let d = f16_at(bo);
    let m = f16_at(bo + 2u);
    let qh = u32_at(bo + 4u);
    for (var i = 0u; i < 4u; i++) {
        let q = u32_at(bo + 8u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let j = 4u * i + k;
            let b = (q >> (8u * k)) & 0xffu;
            let h0 = ((qh >> j) << 4u) & 0x10u;
            let h1 = (qh >> (j + 12u)) & 0x10u;
            dq[j] = f32((b & 0xfu) | h0) * d + m;
            dq[j + 16u] = f32((b >> 4u) | h1) * d + m;
        }
    }
}

fn decode_q8_0(bo: u32, c: u32) {
    let d = f16_at(bo);
    for (var i = 0u; i < 8u; i++) {
        let q = u32_at(bo + 2u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            dq[4u * i + k] = f32(i8_of((q >> (8u * k)) & 0xffu)) * d;
        }
    }
}
