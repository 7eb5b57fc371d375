// Attention of a batch of n queries over the GPU KV cache of one layer (GQA, causal, sliding window).
//   q (n, n_head·hd) already rotated and scaled; kc, vc (n_ctx, n_kv·hd); out (n, n_head·hd)
//   query t at pos = start + t sees keys lo..=pos, lo = pos + 1 - window (window > 0) else 0;
//   head h reads KV head h / (n_head / n_kv).
//   out = softmax(softcap(q·k) × kq_scale) · v,  softcap(s) = cap · tanh(s / cap) when cap > 0
//   (Gemma 2), else s
// `main`: one workgroup (256 threads) per (head, token, split). Scores go through `scores`
// (max_batch, n_head, n_ctx): pass 1 q·k and max, pass 2 exp and sum, pass 3 the weighted sum of V.
// Split-K (flash decoding): with S = nwg.z > 1 splits (one token: the host splits a long cache so
// that more than n_head workgroups share the work), split s takes its share of the keys and writes
// its max m_s, its sum l_s = Σ exp(score − m_s) and o_s = Σ exp(score − m_s) · v to `part`
// (n_head, MAX_SPLIT, hd + 2); `combine` then writes out = Σ e^(m_s − M) o_s / Σ e^(m_s − M) l_s,
// M = max m_s. With S = 1, `main` writes out itself.
// KV is the cache's element type (f32, or f16 where the device has shader-f16: half the bytes
// to read; the host substitutes it); reads convert to f32, all arithmetic is f32.
// Dispatch: main (n_head, n, S); combine (n_head, 1, 1), only when S > 1 (n = 1).

struct Step {
    n_tok: u32,
    start: u32,
    out_row0: u32,
    n_out: u32,
}

struct AttentionParams {
    n_head: u32,
    n_head_kv: u32,
    hd: u32,
    window: u32,
    n_ctx: u32,
    kq_scale: f32,
    softcap: f32,
    split_keys: u32, // keys per split of one token's attention (the host's choice of S)
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: AttentionParams;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> kc: array<KV>;
@group(0) @binding(4) var<storage, read> vc: array<KV>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> part: array<f32>;

const MAX_SPLIT: u32 = 32u;

// 256 threads: decoding has only n_head workgroups (12 for Qwen 1.5B), so each must be wide, and
// every loop keeps four independent loads in flight (it is latency-bound, not ALU-bound).
const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

// q · k of one key (hd values), four lanes at a time.
fn qk(qo: u32, kb: u32) -> f32 {
    var s4 = vec4<f32>(0.0);
    var d = 0u;
    for (; d + 4u <= p.hd; d += 4u) {
        let qv = vec4<f32>(q[qo + d], q[qo + d + 1u], q[qo + d + 2u], q[qo + d + 3u]);
        let kv = vec4<f32>(
            f32(kc[kb + d]),
            f32(kc[kb + d + 1u]),
            f32(kc[kb + d + 2u]),
            f32(kc[kb + d + 3u]),
        );
        s4 += qv * kv;
    }
    var s = (s4.x + s4.y) + (s4.z + s4.w);
    for (; d < p.hd; d++) {
        s += q[qo + d] * f32(kc[kb + d]);
    }
    return s;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let pos = st.start + t;
    var first = 0u;
    if (p.window > 0u) {
        first = pos + 1u - min(pos + 1u, p.window);
    }
    // this split's keys: lo ..< end
    let per = (pos + 1u - first + nwg.z - 1u) / nwg.z;
    let lo = min(first + wid.z * per, pos + 1u);
    let end = min(lo + per, pos + 1u);
    let kvd = p.n_head_kv * p.hd;
    let qd = p.n_head * p.hd;
    let ko = (h / (p.n_head / p.n_head_kv)) * p.hd;
    let qo = t * qd + h * p.hd;
    let sb = (t * p.n_head + h) * p.n_ctx;

    // pass 1: scores and their max
    var m = -3.0e38;
    for (var j = lo + lid; j < end; j += WG) {
        var s = qk(qo, j * kvd + ko);
        if (p.softcap > 0.0) {
            s = tanh(clamp(s / p.softcap, -15.0, 15.0)) * p.softcap;
        }
        s = s * p.kq_scale;
        scores[sb + j] = s;
        m = max(m, s);
    }
    red[lid] = m;
    workgroupBarrier();
    for (var r = WG / 2u; r > 0u; r >>= 1u) {
        if (lid < r) {
            red[lid] = max(red[lid], red[lid + r]);
        }
        workgroupBarrier();
    }
    let mx = red[0];
    workgroupBarrier();

    // pass 2: exp and sum (each thread revisits its own keys)
    var sum = 0.0;
    for (var j = lo + lid; j < end; j += WG) {
        let e = exp(scores[sb + j] - mx);
        scores[sb + j] = e;
        sum += e;
    }
    red[lid] = sum;
    workgroupBarrier();
    for (var r = WG / 2u; r > 0u; r >>= 1u) {
        if (lid < r) {
            red[lid] += red[lid + r];
        }
        workgroupBarrier();
    }
    let total = red[0];
    storageBarrier();
    workgroupBarrier();

    // pass 3: weighted sum of V. Thread = (phase, dimension d): the WG / hd phases take every
    // phases-th key, four keys per iteration; then the phases' partial sums are added.
    let phases = WG / p.hd; // the host keeps hd ≤ WG
    let ph = lid / p.hd;
    let d = lid % p.hd;
    var acc = 0.0;
    if (ph < phases) {
        let stp = phases;
        var a = vec4<f32>(0.0);
        var j = lo + ph;
        for (; j + 3u * stp < end; j += 4u * stp) {
            let w = vec4<f32>(
                scores[sb + j],
                scores[sb + j + stp],
                scores[sb + j + 2u * stp],
                scores[sb + j + 3u * stp],
            );
            let v = vec4<f32>(
                f32(vc[j * kvd + ko + d]),
                f32(vc[(j + stp) * kvd + ko + d]),
                f32(vc[(j + 2u * stp) * kvd + ko + d]),
                f32(vc[(j + 3u * stp) * kvd + ko + d]),
            );
            a += w * v;
        }
        for (; j < end; j += stp) {
            a.x += scores[sb + j] * f32(vc[j * kvd + ko + d]);
        }
        acc = (a.x + a.y) + (a.z + a.w);
    }
    red[lid] = acc;
    workgroupBarrier();
    if (ph == 0u) {
        var v = 0.0;
        for (var k = 0u; k < phases; k++) {
            v += red[k * p.hd + d];
        }
        if (nwg.z == 1u) {
            out[qo + d] = v / total;
        } else {
            let po = (h * MAX_SPLIT + wid.z) * (p.hd + 2u);
            part[po + 2u + d] = v;
            if (d == 0u) {
                part[po] = mx;
                part[po + 1u] = total;
            }
        }
    }
}

// The splits' partial results of one head (one token) into `out`. The host keeps S ≤ MAX_SPLIT.
@compute @workgroup_size(256)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let pos = st.start;
    var first = 0u;
    if (p.window > 0u) {
        first = pos + 1u - min(pos + 1u, p.window);
    }
    let splits = min(MAX_SPLIT, max(1u, (pos + 1u - first + p.split_keys - 1u) / p.split_keys));
    let stride = p.hd + 2u;
    var m = -3.0e38;
    for (var s = 0u; s < splits; s++) {
        m = max(m, part[(h * MAX_SPLIT + s) * stride]);
    }
    if (lid >= p.hd) {
        return;
    }
    var l = 0.0;
    var v = 0.0;
    for (var s = 0u; s < splits; s++) {
        let po = (h * MAX_SPLIT + s) * stride;
        let w = exp(part[po] - m);
        l += w * part[po + 1u];
        v += w * part[po + 2u + lid];
    }
    out[h * p.hd + lid] = v / l;
}
