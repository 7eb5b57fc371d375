// Decoders for unquantized rows: F32, F16, BF16. A "block" here is a chunk of 32 elements
// (BLOCK_BYTES = 128 / 64 / 64, SUBS = 1); `bo` is the byte offset of the chunk.

fn decode_f32(bo: u32, c: u32) {
    for (var i = 0u; i < 32u; i++) {
        dq[i] = bitcast<f32>(u32_at(bo + 4u * i));
    }
}

fn decode_f16(bo: u32, c: u32) {
    for (var i = 0u; i < 16u; i++) {
        let v = unpack2x16float(u32_at(bo + 4u * i));
        dq[2u * i] = v.x;
        dq[2u * i + 1u] = v.y;
    }
}

fn decode_bf16(bo: u32, c: u32) {
    for (var i = 0u; i < 16u; i++) {
        let w = u32_at(bo + 4u * i);
        dq[2u * i] = bitcast<f32>(w << 16u);
        dq[2u * i + 1u] = bitcast<f32>(w & 0xffff0000u);
    }
}
