// Fused dequantize-and-dot of one 32-weight chunk with x[xo .. xo + 32), for the one-token matvec
// (`main1` in matvec.wgsl, which declares `x`). `bo`, `c` as for the decoders. The scale (and the
// offset, for types that have one) are applied once per chunk — d · Σ q·x − m · Σ x — instead of
// per weight, and nothing goes through the private `dq` array: weights stay in registers, four at
// a time. Types without a fused form use `dot_dq` (decoder + dot). K-quants: dot_k.wgsl.

fn x4(o: u32) -> vec4<f32> {
    return vec4<f32>(x[o], x[o + 1u], x[o + 2u], x[o + 3u]);
}

fn hsum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// The four bytes of `q` (each masked by `m` after a right shift by `s`) as floats.
fn nib4(q: u32, s: u32, m: u32) -> vec4<f32> {
    let v = q >> s;
    return vec4<f32>(f32(v & m), f32((v >> 8u) & m), f32((v >> 16u) & m), f32((v >> 24u) & m));
}

fn dot_dq(bo: u32, c: u32, xo: u32) -> f32 {
    DECODE(bo, c);
    var s = 0.0;
    for (var i = 0u; i < 32u; i++) {
        s += dq[i] * x[xo + i];
    }
    return s;
}

// Σ q·x and Σ x over a 32-weight chunk whose 16 bytes of nibbles start at byte `qo` (low nibbles:
// weights 0..15, high nibbles: 16..31), as in Q4_0 and Q4_1.
fn nibble_dot(qo: u32, xo: u32) -> vec2<f32> {
    var s = vec4<f32>(0.0);
    var sx = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let q = u32_at(qo + 4u * i);
        let xl = x4(xo + 4u * i);
        let xh = x4(xo + 16u + 4u * i);
        s += nib4(q, 0u, 0xfu) * xl + nib4(q, 4u, 0xfu) * xh;
        sx += xl + xh;
    }
    return vec2<f32>(hsum4(s), hsum4(sx));
}

fn dot_q4_0(bo: u32, c: u32, xo: u32) -> f32 {
    let r = nibble_dot(bo + 2u, xo);
    return f16_at(bo) * (r.x - 8.0 * r.y);
}

fn dot_q4_1(bo: u32, c: u32, xo: u32) -> f32 {
    let r = nibble_dot(bo + 4u, xo);
    return f16_at(bo) * r.x + f16_at(bo + 2u) * r.y;
}

fn dot_q8_0(bo: u32, c: u32, xo: u32) -> f32 {
    let d = f16_at(bo);
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let q = u32_at(bo + 2u + 4u * i);
        let w = vec4<f32>(
            f32(i32(q << 24u) >> 24u),
            f32(i32(q << 16u) >> 24u),
            f32(i32(q << 8u) >> 24u),
            f32(i32(q) >> 24u),
        );
        s += w * x4(xo + 4u * i);
    }
    return d * hsum4(s);
}
