// Context shift of one layer's KV cache: rows 0..n of the staging buffers (the keys and values
// that stay, copied out of the cache) go back to the cache at rows dst..dst + n, the keys rotated
// by −discard positions (RoPE angles are linear in the position, so a key rotated for position p
// and then by −d is the key for p − d).
//   cs (hd/2, 2):          cos/sin of −discard × inv_freq_i, computed on the host like the CPU's
//   tk, tv (n, n_kv·hd):   staging copies of the moved rows
//   kc, vc (n_ctx, n_kv·hd): the cache
// KV is the cache's element type (f32, or f16 where the device has shader-f16; the host
// substitutes it and writes KV(…) conversions).
// Pairs: (2i, 2i+1) for the original ordering, (i, i + rot/2) for NeoX, over the first `rot`
// dims of each head (the rest are copied).
// Dispatch: one workgroup of 64 threads per moved row, (x, y) = split of n over 32768 columns.

struct ShiftParams {
    n_head_kv: u32,
    hd: u32,
    neox: u32,
    dst: u32,
    n: u32,
    rot: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: ShiftParams;
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<storage, read> tk: array<KV>;
@group(0) @binding(3) var<storage, read> tv: array<KV>;
@group(0) @binding(4) var<storage, read_write> kc: array<KV>;
@group(0) @binding(5) var<storage, read_write> vc: array<KV>;

fn pair(i: u32) -> vec2<u32> {
    let hv = p.rot / 2u;
    if (p.neox != 0u) {
        return vec2<u32>(i, i + hv);
    }
    return vec2<u32>(2u * i, 2u * i + 1u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wid.x + wid.y * 32768u;
    if (j >= p.n) {
        return;
    }
    let hv = p.rot / 2u;
    let kvd = p.n_head_kv * p.hd;
    let src = j * kvd;
    let dst = (p.dst + j) * kvd;
    for (var i = lid; i < p.n_head_kv * hv; i += 64u) {
        let h = i / hv;
        let f = i % hv;
        let c = cs[f * 2u];
        let s = cs[f * 2u + 1u];
        let pr = pair(f) + vec2<u32>(h * p.hd);
        let x0 = f32(tk[src + pr.x]);
        let x1 = f32(tk[src + pr.y]);
        kc[dst + pr.x] = KV(x0 * c - x1 * s);
        kc[dst + pr.y] = KV(x0 * s + x1 * c);
    }
    let rest = p.hd - p.rot;
    for (var i = lid; i < p.n_head_kv * rest; i += 64u) {
        let d = (i / rest) * p.hd + p.rot + i % rest;
        kc[dst + d] = tk[src + d];
    }
    for (var i = lid; i < kvd; i += 64u) {
        vc[dst + i] = tv[src + i];
    }
}
