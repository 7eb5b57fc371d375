// Decoders for the 256-element K-quant super-blocks (SUBS = 8): `bo` = byte offset of the
// super-block, `c` = which 32-element chunk (0..7) to decode. Layouts (ggml-common.h):
//   Q2_K (84 B):  scales[16] (lo nibble scale, hi nibble min), qs[64] (2 bits), d f16, dmin f16
//   Q3_K (110 B): hmask[32], qs[64] (2 bits), scales[12] (16 × 6-bit, biased by 32), d f16
//   Q4_K (144 B): d f16, dmin f16, scales[12] (8 × 6-bit scale + 6-bit min), qs[128] (4 bits)
//   Q5_K (176 B): d f16, dmin f16, scales[12], qh[32] (5th bit), qs[128] (4 bits)
//   Q6_K (210 B): ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] i8, d f16

fn decode_q2_k(bo: u32, c: u32) {
    let d = f16_at(bo + 80u);
    let dmin = f16_at(bo + 82u);
    let n = c / 4u;
    let j = c % 4u;
    for (var h = 0u; h < 2u; h++) {
        let sc = byte_at(bo + n * 8u + j * 2u + h);
        let dl = d * f32(sc & 0xfu);
        let ml = dmin * f32(sc >> 4u);
        for (var i = 0u; i < 4u; i++) {
            let q = u32_at(bo + 16u + n * 32u + h * 16u + 4u * i);
            for (var k = 0u; k < 4u; k++) {
                dq[h * 16u + 4u * i + k] = dl * f32((q >> (8u * k + 2u * j)) & 3u) - ml;
            }
        }
    }
}

fn decode_q3_k(bo: u32, c: u32) {
    let d = f16_at(bo + 108u);
    let n = c / 4u;
    let j = c % 4u;
    for (var h = 0u; h < 2u; h++) {
        let s = n * 8u + j * 2u + h;
        var lo: u32;
        if (s < 8u) {
            lo = byte_at(bo + 96u + s) & 0xfu;
        } else {
            lo = byte_at(bo + 88u + s) >> 4u;
        }
        let hi = (byte_at(bo + 104u + (s % 4u)) >> (2u * (s / 4u))) & 3u;
        let dl = d * f32(i32(lo | (hi << 4u)) - 32);
        for (var i = 0u; i < 4u; i++) {
            let q = u32_at(bo + 32u + n * 32u + h * 16u + 4u * i);
            let m = u32_at(bo + h * 16u + 4u * i);
            for (var k = 0u; k < 4u; k++) {
                let qb = i32((q >> (8u * k + 2u * j)) & 3u);
                let hb = (m >> (8u * k + n * 4u + j)) & 1u;
                dq[h * 16u + 4u * i + k] = dl * f32(qb - select(4, 0, hb != 0u));
            }
        }
    }
}

// 6-bit scale and min number `j` (0..7) of a Q4_K/Q5_K super-block whose scales start at `so`.
fn scale_min_k4(so: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(byte_at(so + j) & 63u), f32(byte_at(so + j + 4u) & 63u));
    }
    let a = byte_at(so + j + 4u);
    let sc = (a & 0xfu) | ((byte_at(so + j - 4u) >> 6u) << 4u);
    let m = (a >> 4u) | ((byte_at(so + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

fn decode_q4_k(bo: u32, c: u32) {
    let d = f16_at(bo);
    let dmin = f16_at(bo + 2u);
    let sm = scale_min_k4(bo + 4u, c);
    let d1 = d * sm.x;
    let m1 = dmin * sm.y;
    let shift = (c % 2u) * 4u;
    for (var i = 0u; i < 8u; i++) {
        let q = u32_at(bo + 16u + (c / 2u) * 32u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            dq[4u * i + k] = d1 * f32((q >> (8u * k + shift)) & 0xfu) - m1;
        }
    }
}

fn decode_q5_k(bo: u32, c: u32) {
    let d = f16_at(bo);
    let dmin = f16_at(bo + 2u);
    let sm = scale_min_k4(bo + 4u, c);
    let d1 = d * sm.x;
    let m1 = dmin * sm.y;
    let shift = (c % 2u) * 4u;
    for (var i = 0u; i < 8u; i++) {
        let q = u32_at(bo + 48u + (c / 2u) * 32u + 4u * i);
        let h = u32_at(bo + 16u + 4u * i);
        for (var k = 0u; k < 4u; k++) {
            let lo = (q >> (8u * k + shift)) & 0xfu;
            let hb = ((h >> (8u * k + c)) & 1u) << 4u;
            dq[4u * i + k] = d1 * f32(lo | hb) - m1;
        }
    }
}

fn decode_q6_k(bo: u32, c: u32) {
    let d = f16_at(bo + 208u);
    let n = c / 4u;
    let k = c % 4u;
    let shift = (k / 2u) * 4u;
    for (var l = 0u; l < 32u; l += 4u) {
        let ql = u32_at(bo + n * 64u + (k & 1u) * 32u + l);
        let qh = u32_at(bo + 128u + n * 32u + l);
        for (var b = 0u; b < 4u; b++) {
            let lo = (ql >> (8u * b + shift)) & 0xfu;
            let hi = (qh >> (8u * b + 2u * k)) & 3u;
            let q = i32(lo | (hi << 4u)) - 32;
            let sc = i8_of(byte_at(bo + 192u + n * 8u + (l + b) / 16u + 2u * k));
            dq[l + b] = d * f32(sc) * f32(q);
        }
    }
}
