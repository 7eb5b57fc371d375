// A layer's products with their neighbours folded in: one dispatch each for q·k·v, gate·up·act,
// and the output / down products with the residual add. Up to three weight matrices (segments,
// each in its own binding w0..w2, each of its own type) multiply the same input x (n, cols).
//
//   concat (GATED = false): output rows are the segments' rows one after the other
//       (segment s starts at row seg_s: q, then k, then v): y[t, r] = W_s[r - seg_s] · x[t]
//   gated (GATED = true): two segments of `rows` rows each (gate, up), one output row per pair:
//       y[t, r] = act(W_0[r] · x[t] + b[r]) · (W_1[r] · x[t] + b[rows + r])
//
// Options (p.flags), applied to each product v in this order:
//   NORM:  v *= 1 / sqrt(mean(res[t]²) + eps) — x holds res ∘ w (the RMSNorm weight, written by
//          the producer of res); the norm of the residual row is recomputed by every workgroup,
//          so no dispatch is spent on it
//   BIAS:  v += bias[r]           (gated: the up bias follows the gate bias)
//   RESID: res[t, r] += v · res_scale; with NEXT, y[t, r] = res[t, r] ∘ nw[r] (the next norm's
//          input, for a NORM consumer); nothing else is written
//   ACT:   v = act(v)             (a plain MLP's up product)
//   act = SiLU, or GELU-tanh with GELU.
// f32 accumulation throughout, as matvec.wgsl: `main` for a batch (a tiled matrix × matrix
// product: 64 row slots × 32 tokens per 256-thread workgroup, each chunk decoded once into
// workgroup memory), `main1` for one token (64 threads per row, fused dequantize-and-dot).
// The host prepends `const GATED`, each segment's dequant and dot sources (their functions and
// `wq` renamed with the segment's suffix) and the `part1` / `deq` dispatchers over segments.

struct Step {
    n_tok: u32,
    start: u32,
    out_row0: u32,
    n_out: u32,
}

struct FusedParams {
    rows: u32,        // output rows (concat: all segments'; gated: each segment's)
    cols: u32,        // input row length
    seg1: u32,        // first output row of segment 1 (concat)
    seg2: u32,        // first output row of segment 2 (concat)
    rb0: u32,         // row bytes of each segment's matrix
    rb1: u32,
    rb2: u32,
    out_stride: u32,  // output (and residual) row length
    flags: u32,
    eps: f32,
    res_scale: f32,
    _pad: u32,
}

const NORM: u32 = 1u;
const RESID: u32 = 2u;
const NEXT: u32 = 4u;
const BIAS: u32 = 8u;
const GELU: u32 = 16u;
const ACT: u32 = 32u;

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: FusedParams;
@group(0) @binding(2) var<storage, read> w0: array<u32>;
@group(0) @binding(3) var<storage, read> w1: array<u32>;
@group(0) @binding(4) var<storage, read> w2: array<u32>;
@group(0) @binding(5) var<storage, read> x: array<f32>;
@group(0) @binding(6) var<storage, read_write> res: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;
@group(0) @binding(8) var<storage, read> bias: array<f32>;
@group(0) @binding(9) var<storage, read> nw: array<f32>;

var<private> dq: array<f32, 32>;

fn has(f: u32) -> bool {
    return (p.flags & f) != 0u;
}

fn act(v: f32) -> f32 {
    if (has(GELU)) {
        let a = clamp(0.7978846 * (v + 0.044715 * v * v * v), -15.0, 15.0);
        return 0.5 * v * (1.0 + tanh(a));
    }
    return v / (1.0 + exp(-v));
}

// Segment and row of output row `r` (concat).
fn seg_of(r: u32) -> vec2<u32> {
    if (r >= p.seg2) {
        return vec2<u32>(2u, r - p.seg2);
    }
    if (r >= p.seg1) {
        return vec2<u32>(1u, r - p.seg1);
    }
    return vec2<u32>(0u, r);
}

// Write product `v` (already × the norm) of token t, output row r.
fn finish(t: u32, r: u32, v0: f32) {
    var v = v0;
    if (has(BIAS)) {
        v += bias[r];
    }
    let i = t * p.out_stride + r;
    if (has(RESID)) {
        let xn = res[i] + v * p.res_scale;
        res[i] = xn;
        if (has(NEXT)) {
            y[i] = xn * nw[r];
        }
        return;
    }
    if (has(ACT)) {
        v = act(v);
    }
    y[i] = v;
}

// Gated output row r of token t from its gate and up products (× the norm).
fn finish_gated(t: u32, r: u32, g0: f32, u0: f32) {
    var g = g0;
    var u = u0;
    if (has(BIAS)) {
        g += bias[r];
        u += bias[p.rows + r];
    }
    y[t * p.out_stride + r] = act(g) * u;
}

// ---------------------------------------------------------------------------------------------
// Batch: `main`, a tiled matrix × matrix product as matvec.wgsl's `main` (read its notes): 256
// threads, RPW = 64 row slots × NT = 32 tokens per workgroup, K in steps of one 32-weight chunk;
// threads 0..63 decode one slot's chunk each (`deq`) into workgroup memory, all load the x tile,
// thread (tr, tc) = (lid / 16, lid % 16) accumulates slots 4tr..4tr+3 × tokens 2tc, 2tc+1.
// Slots: concat, slot s = output row g·RPW + s (of its segment); gated, slot s = segment
// (s / 2) % 2 (gate, up) of output row g·RPW/2 + 2·(s / 4) + s % 2 — a thread's four slots are
// (gate a, gate a+1, up a, up a+1), so `finish_gated` gets each pair from one thread's registers.
// NORM: before the loop, 8 threads per token sum the squares of its residual row (`red`), and
// 1 / rms lands in `inv_t`. Workgroup memory: 12 KiB of tiles + 1 KiB + 128 B.
// Dispatch: (min(g, 32768), ceil(g / 32768), ceil(n / NT)), g = ceil(rows / RPW) (concat) or
// ceil(rows / (RPW / 2)) (gated).
// ---------------------------------------------------------------------------------------------

// RPW, NT, the tiles and the K step (`tile_step`) are tile.wgsl's, appended by the host.
var<workgroup> red: array<f32, 256>;
var<workgroup> inv_t: array<f32, 32>; // NT

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    let t0 = wid.z * NT;
    let nt = min(NT, st.n_tok - min(st.n_tok, t0));
    let tr = lid / 16u;
    let tc = lid % 16u;
    // the (segment, row) that thread lid < RPW decodes: slot lid
    var sr = vec2<u32>(0u, 0u);
    var live = false;
    if (GATED) {
        let r = g * (RPW / 2u) + 2u * (lid / 4u) + lid % 2u;
        sr = vec2<u32>((lid / 2u) % 2u, r);
        live = lid < RPW && r < p.rows;
    } else {
        let r = g * RPW + lid;
        sr = seg_of(r);
        live = lid < RPW && r < p.rows;
    }
    // NORM: 1 / rms of each token's residual row
    if (has(NORM)) {
        let t = lid / 8u;
        var ss = 0.0;
        if (t < nt) {
            let ro = (t0 + t) * p.cols;
            for (var i = lid % 8u; i < p.cols; i += 8u) {
                let v = res[ro + i];
                ss += v * v;
            }
        }
        red[lid] = ss;
        workgroupBarrier();
        if (lid < nt) {
            var s = 0.0;
            for (var i = 0u; i < 8u; i++) {
                s += red[lid * 8u + i];
            }
            inv_t[lid] = 1.0 / sqrt(s / f32(p.cols) + p.eps);
        }
        workgroupBarrier();
    }
    var acc0 = vec4<f32>(0.0); // slots 4tr..4tr+3, token 2tc
    var acc1 = vec4<f32>(0.0); // token 2tc+1
    let nchunks = p.cols / 32u;
    for (var j = 0u; j < nchunks; j++) {
        if (live) {
            deq(sr.x, sr.y, j);
        }
        let s = tile_step(lid, live, j, p.cols, t0, nt);
        acc0 += s[0];
        acc1 += s[1];
    }
    for (var c = 0u; c < 2u; c++) {
        let t = 2u * tc + c;
        if (t >= nt) {
            continue;
        }
        var inv = 1.0;
        if (has(NORM)) {
            inv = inv_t[t];
        }
        let a = select(acc0, acc1, c == 1u) * inv;
        if (GATED) {
            for (var i = 0u; i < 2u; i++) {
                let r = g * (RPW / 2u) + 2u * tr + i;
                if (r < p.rows) {
                    finish_gated(t0 + t, r, a[i], a[i + 2u]);
                }
            }
        } else {
            for (var i = 0u; i < 4u; i++) {
                let r = g * RPW + 4u * tr + i;
                if (r < p.rows) {
                    finish(t0 + t, r, a[i]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One token: `main1`. 256 threads = RPW1 row slots × TPR1 threads.
// Dispatch: (min(g, 32768), ceil(g / 32768), 1), g = ceil(rows / RPW1) (concat) or
// ceil(rows / (RPW1 / 2)) (gated).
// ---------------------------------------------------------------------------------------------

const TPR1: u32 = 64u;
const RPW1: u32 = 4u;
var<workgroup> red1: array<f32, 256>;

@compute @workgroup_size(256)
fn main1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let sub = lid % TPR1;
    let slot = lid / TPR1;
    let g = wid.x + wid.y * nwg.x;
    var inv = 1.0;
    if (has(NORM)) {
        // 64 partial sums, then every thread adds them up (one barrier, not a tree's eight)
        var ss = 0.0;
        if (lid < 64u) {
            for (var i = lid; i < p.cols; i += 64u) {
                let v = res[i];
                ss += v * v;
            }
        }
        red1[lid] = ss;
        workgroupBarrier();
        var total = 0.0;
        for (var i = 0u; i < 64u; i++) {
            total += red1[i];
        }
        inv = 1.0 / sqrt(total / f32(p.cols) + p.eps);
        workgroupBarrier();
    }
    var sr = vec2<u32>(0u, 0u);
    var out_row = 0u;
    var live = false;
    if (GATED) {
        out_row = g * (RPW1 / 2u) + slot % (RPW1 / 2u);
        sr = vec2<u32>(slot / (RPW1 / 2u), out_row);
        live = out_row < p.rows;
    } else {
        out_row = g * RPW1 + slot;
        sr = seg_of(out_row);
        live = out_row < p.rows;
    }
    var acc = 0.0;
    if (live) {
        acc = part1(sr.x, sr.y, sub);
    }
    red1[lid] = acc;
    workgroupBarrier();
    for (var r = TPR1 / 2u; r > 0u; r >>= 1u) {
        if (sub < r) {
            red1[lid] += red1[lid + r];
        }
        workgroupBarrier();
    }
    if (sub != 0u || !live) {
        return;
    }
    if (GATED) {
        if (slot < RPW1 / 2u) {
            finish_gated(0u, out_row, red1[lid] * inv, red1[lid + (RPW1 / 2u) * TPR1] * inv);
        }
    } else {
        finish(0u, out_row, red1[lid] * inv);
    }
}
