// RoPE on Q and K, Q scaling, and the KV-cache store, for a batch of n tokens at start..start+n.
//   q (n, n_head·hd):   rotated in place, then × the attention temperature at its position
//                       (1 + temp_scale · ln(⌊pos / temp_floor⌋ + 1); Ministral 3) and × q_scale
//   k (n, n_kv·hd):     rotated and written to kc[(start + t)·kvd ..]
//   v (n, n_kv·hd):     copied to vc[(start + t)·kvd ..]
// Pairs: (2i, 2i+1) for the original ordering, (i, i + rot/2) for NeoX, over the first `rot`
// dims of each head (partial RoPE: rot < hd; the rest pass through).
// `cs` (n_ctx, hd/2, 2) holds cos/sin of pos × inv_freq_i, computed on the host exactly as the CPU
// path does (per-layer base, linear scaling, rope_freqs), so large angles lose nothing on GPUs
// with low-precision sin/cos.
// Dispatch: (n, 1, 1) workgroups of 64 threads.

struct Step {
    n_tok: u32,
    start: u32,
    out_row0: u32,
    n_out: u32,
}

struct Params {
    n_head: u32,
    n_head_kv: u32,
    hd: u32,
    neox: u32,
    q_scale: f32,
    temp_scale: f32,
    temp_floor: u32,
    rot: u32,
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> cs: array<f32>;
@group(0) @binding(3) var<storage, read_write> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> kc: array<f32>;
@group(0) @binding(7) var<storage, read_write> vc: array<f32>;

fn pair(i: u32) -> vec2<u32> {
    let hv = p.rot / 2u;
    if (p.neox != 0u) {
        return vec2<u32>(i, i + hv);
    }
    return vec2<u32>(2u * i, 2u * i + 1u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wid.x;
    let pos = st.start + t;
    let hv = p.rot / 2u;
    let qd = p.n_head * p.hd;
    let kvd = p.n_head_kv * p.hd;
    var temp = 1.0;
    if (p.temp_scale != 0.0) {
        temp = log(f32(pos / p.temp_floor) + 1.0) * p.temp_scale + 1.0;
    }
    for (var i = lid; i < p.n_head * hv; i += 64u) {
        let h = i / hv;
        let f = i % hv;
        let c = cs[(pos * hv + f) * 2u];
        let s = cs[(pos * hv + f) * 2u + 1u];
        let ab = pair(f) + vec2<u32>(t * qd + h * p.hd);
        let x0 = q[ab.x];
        let x1 = q[ab.y];
        q[ab.x] = (x0 * c - x1 * s) * temp * p.q_scale;
        q[ab.y] = (x0 * s + x1 * c) * temp * p.q_scale;
    }
    for (var i = lid; i < p.n_head_kv * hv; i += 64u) {
        let h = i / hv;
        let f = i % hv;
        let c = cs[(pos * hv + f) * 2u];
        let s = cs[(pos * hv + f) * 2u + 1u];
        let pr = pair(f) + vec2<u32>(h * p.hd);
        let x0 = k[t * kvd + pr.x];
        let x1 = k[t * kvd + pr.y];
        kc[pos * kvd + pr.x] = x0 * c - x1 * s;
        kc[pos * kvd + pr.y] = x0 * s + x1 * c;
    }
    // Partial RoPE: dims rot..hd of each head pass through (Q scaled all the same).
    let rest = p.hd - p.rot;
    for (var i = lid; i < p.n_head * rest; i += 64u) {
        let j = t * qd + (i / rest) * p.hd + p.rot + i % rest;
        q[j] = q[j] * temp * p.q_scale;
    }
    for (var i = lid; i < p.n_head_kv * rest; i += 64u) {
        let j = (i / rest) * p.hd + p.rot + i % rest;
        kc[pos * kvd + j] = k[t * kvd + j];
    }
    for (var i = lid; i < kvd; i += 64u) {
        vc[pos * kvd + i] = v[t * kvd + i];
    }
}
