// Q/K norms, RoPE on Q and K, Q scaling, and the KV-cache store, for a batch of n tokens at
// start..start+n, reading the q·k·v product's output.
//   qkv (n, qd + 2·kvd):  q, k, v of each token side by side (qd = n_head·hd, kvd = n_kv·hd)
//   q (n, qd):            normed, rotated, then × the attention temperature at its position
//                         (1 + temp_scale · ln(⌊pos / temp_floor⌋ + 1); Ministral 3) and × q_scale
//   kc (n_ctx, kvd):      k normed and rotated, at row start + t
//   vc (n_ctx, kvd):      v copied, at row start + t
// Q/K norms (Qwen 3, Gemma 3, OLMo 2): RMSNorm of each q_norm-wide piece of the q row × qn
// (q_norm = hd: per head; = qd: the whole row), likewise k; 0 = none.
// Pairs: (2i, 2i+1) for the original ordering, (i, i + rot/2) for NeoX, over the first `rot`
// dims of each head (partial RoPE: rot < hd; the rest pass through).
// `cs` (n_ctx, hd/2, 2) holds cos/sin of pos × inv_freq_i, computed on the host exactly as the CPU
// path does (per-layer base, linear scaling, rope_freqs), so large angles lose nothing on GPUs
// with low-precision sin/cos.
// KV is the cache's element type (f32, or f16 where the device has shader-f16; the host
// substitutes it and writes KV(…) conversions).
// Dispatch: (n, 1, 1) workgroups of 64 threads.

struct Step {
    n_tok: u32,
    start: u32,
    out_row0: u32,
    n_out: u32,
}

struct RopeParams {
    n_head: u32,
    n_head_kv: u32,
    hd: u32,
    neox: u32,
    q_scale: f32,
    temp_scale: f32,
    temp_floor: u32,
    rot: u32,
    q_norm: u32,
    k_norm: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: RopeParams;
@group(0) @binding(2) var<storage, read> cs: array<f32>;
@group(0) @binding(3) var<storage, read> qkv: array<f32>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> kc: array<KV>;
@group(0) @binding(6) var<storage, read_write> vc: array<KV>;
@group(0) @binding(7) var<storage, read> qn: array<f32>;
@group(0) @binding(8) var<storage, read> kn: array<f32>;

// 1 / rms of each norm piece: q's pieces first, then k's (the host keeps their count ≤ 256).
var<workgroup> inv: array<f32, 256>;

fn pair(i: u32) -> vec2<u32> {
    let hv = p.rot / 2u;
    if (p.neox != 0u) {
        return vec2<u32>(i, i + hv);
    }
    return vec2<u32>(2u * i, 2u * i + 1u);
}

// Element j of the token's q (at qo) or k (at ko), normed.
fn qv(qo: u32, j: u32) -> f32 {
    if (p.q_norm == 0u) {
        return qkv[qo + j];
    }
    return qkv[qo + j] * inv[j / p.q_norm] * qn[j % p.q_norm];
}

fn kv(ko: u32, j: u32, nq: u32) -> f32 {
    if (p.k_norm == 0u) {
        return qkv[ko + j];
    }
    return qkv[ko + j] * inv[nq + j / p.k_norm] * kn[j % p.k_norm];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wid.x;
    let pos = st.start + t;
    let hv = p.rot / 2u;
    let qd = p.n_head * p.hd;
    let kvd = p.n_head_kv * p.hd;
    let qo = t * (qd + 2u * kvd);
    let ko = qo + qd;
    let vo = ko + kvd;
    // the norms' pieces: one thread each
    var nq = 0u;
    if (p.q_norm != 0u) {
        nq = qd / p.q_norm;
    }
    var nk = 0u;
    if (p.k_norm != 0u) {
        nk = kvd / p.k_norm;
    }
    for (var i = lid; i < nq + nk; i += 64u) {
        var o = qo + i * p.q_norm;
        var dim = p.q_norm;
        if (i >= nq) {
            o = ko + (i - nq) * p.k_norm;
            dim = p.k_norm;
        }
        var ss = 0.0;
        for (var j = 0u; j < dim; j++) {
            ss += qkv[o + j] * qkv[o + j];
        }
        inv[i] = 1.0 / sqrt(ss / f32(dim) + p.eps);
    }
    workgroupBarrier();
    var temp = 1.0;
    if (p.temp_scale != 0.0) {
        temp = log(f32(pos / p.temp_floor) + 1.0) * p.temp_scale + 1.0;
    }
    let qs = temp * p.q_scale;
    for (var i = lid; i < p.n_head * hv; i += 64u) {
        let h = i / hv;
        let f = i % hv;
        let c = cs[(pos * hv + f) * 2u];
        let s = cs[(pos * hv + f) * 2u + 1u];
        let ab = pair(f) + vec2<u32>(h * p.hd);
        let x0 = qv(qo, ab.x);
        let x1 = qv(qo, ab.y);
        q[t * qd + ab.x] = (x0 * c - x1 * s) * qs;
        q[t * qd + ab.y] = (x0 * s + x1 * c) * qs;
    }
    for (var i = lid; i < p.n_head_kv * hv; i += 64u) {
        let h = i / hv;
        let f = i % hv;
        let c = cs[(pos * hv + f) * 2u];
        let s = cs[(pos * hv + f) * 2u + 1u];
        let pr = pair(f) + vec2<u32>(h * p.hd);
        let x0 = kv(ko, pr.x, nq);
        let x1 = kv(ko, pr.y, nq);
        kc[pos * kvd + pr.x] = KV(x0 * c - x1 * s);
        kc[pos * kvd + pr.y] = KV(x0 * s + x1 * c);
    }
    // Partial RoPE: dims rot..hd of each head pass through (Q scaled all the same).
    let rest = p.hd - p.rot;
    for (var i = lid; i < p.n_head * rest; i += 64u) {
        let j = (i / rest) * p.hd + p.rot + i % rest;
        q[t * qd + j] = qv(qo, j) * qs;
    }
    for (var i = lid; i < p.n_head_kv * rest; i += 64u) {
        let j = (i / rest) * p.hd + p.rot + i % rest;
        kc[pos * kvd + j] = KV(kv(ko, j, nq));
    }
    for (var i = lid; i < kvd; i += 64u) {
        vc[pos * kvd + i] = KV(qkv[vo + i]);
    }
}
