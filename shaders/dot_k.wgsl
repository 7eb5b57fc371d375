// Fused dequantize-and-dot for the K-quant super-blocks (see dot.wgsl); needs dequant_k.wgsl.

fn dot_q4_k(bo: u32, c: u32, xo: u32) -> f32 {
    let d = f16_at(bo);
    let dmin = f16_at(bo + 2u);
    let sm = scale_min_k4(bo + 4u, c);
    let shift = (c % 2u) * 4u;
    let qb = bo + 16u + (c / 2u) * 32u;
    var s = vec4<f32>(0.0);
    var sx = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let xv = x4(xo + 4u * i);
        s += nib4(u32_at(qb + 4u * i), shift, 0xfu) * xv;
        sx += xv;
    }
    return d * sm.x * hsum4(s) - dmin * sm.y * hsum4(sx);
}

fn dot_q6_k(bo: u32, c: u32, xo: u32) -> f32 {
    let d = f16_at(bo + 208u);
    let n = c / 4u;
    let k = c % 4u;
    let shift = (k / 2u) * 4u;
    let sc = bo + 192u + n * 8u + 2u * k;
    // weights 0..15 of the chunk use scale sc, 16..31 scale sc + 1
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    for (var l = 0u; l < 32u; l += 4u) {
        let ql = nib4(u32_at(bo + n * 64u + (k & 1u) * 32u + l), shift, 0xfu);
        let qh = nib4(u32_at(bo + 128u + n * 32u + l), 2u * k, 3u);
        let w = ql + 16.0 * qh - 32.0;
        if (l < 16u) {
            s0 += w * x4(xo + l);
        } else {
            s1 += w * x4(xo + l);
        }
    }
    return d * (f32(i8_of(byte_at(sc))) * hsum4(s0) + f32(i8_of(byte_at(sc + 1u))) * hsum4(s1));
}
