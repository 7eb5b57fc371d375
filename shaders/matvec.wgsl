// Quantized matrix × activations: y (n, out_stride)[:, out_off + r] = W (rows, cols) · x (n, cols) + bias.
//
// W is one row-chunk of a GGUF tensor, its blocks as-is in `wq` (a tensor larger than the binding
// limit is split by rows: each chunk is dispatched with its own `out_off`). A workgroup of 64
// threads takes RPW = 8 rows and NT = 8 tokens: the TPR = 8 threads of a row stride over its
// 32-element chunks, dequantize each chunk once into registers (`dq`, see dequant_*.wgsl) and dot
// it with up to NT token rows of x; one barrier, then a shared-memory sum of the 8 partials.
// f32 accumulation throughout.
// Prefill (n ≤ max batch) uses `main`; one token uses `main1` (below).
//
// Dispatch: (min(g, 32768), ceil(g / 32768), ceil(n / NT)) workgroups, g = ceil(rows / RPW).
// The host prepends: `const BLOCK_BYTES`, `const SUBS`, the dequant sources, and replaces DECODE.

struct Step {
    n_tok: u32,     // tokens in this batch
    start: u32,     // position of the first one
    out_row0: u32,  // first row that needs logits
    n_out: u32,     // rows that need logits
}

struct Params {
    rows: u32,       // rows of this chunk
    cols: u32,
    row_bytes: u32,
    out_off: u32,    // first output column written (row offset of this chunk in the tensor)
    out_stride: u32, // output row length (rows of the whole tensor)
    tok_mode: u32,   // 0: n = st.n_tok, 1: n = st.n_out (lm head)
    has_bias: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;

const TPR: u32 = 8u;   // threads per row
const RPW: u32 = 8u;   // rows per workgroup (64 threads)
const NT: u32 = 8u;    // tokens per workgroup
var<workgroup> red: array<f32, 512>; // NT * 64

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let sub = lid % TPR;
    let row = (wid.x + wid.y * nwg.x) * RPW + lid / TPR;
    let t0 = wid.z * NT;
    let n = select(st.n_tok, st.n_out, p.tok_mode == 1u);
    let nt = min(NT, n - min(n, t0));
    var acc: array<f32, 8>;
    for (var t = 0u; t < NT; t++) {
        acc[t] = 0.0;
    }
    if (row < p.rows) {
        let nchunks = p.cols / 32u;
        let rb = row * p.row_bytes;
        for (var j = sub; j < nchunks; j += TPR) {
            DECODE(rb + (j / SUBS) * BLOCK_BYTES, j % SUBS);
            for (var t = 0u; t < nt; t++) {
                let xo = (t0 + t) * p.cols + j * 32u;
                var s = 0.0;
                for (var i = 0u; i < 32u; i++) {
                    s += dq[i] * x[xo + i];
                }
                acc[t] += s;
            }
        }
    }
    for (var t = 0u; t < nt; t++) {
        red[t * 64u + lid] = acc[t];
    }
    workgroupBarrier();
    if (sub == 0u && row < p.rows) {
        for (var t = 0u; t < nt; t++) {
            var v = 0.0;
            for (var k = 0u; k < TPR; k++) {
                v += red[t * 64u + lid + k];
            }
            if (p.has_bias != 0u) {
                v += bias[p.out_off + row];
            }
            y[(t0 + t) * p.out_stride + p.out_off + row] = v;
        }
    }
}

// ----------------------------------------------------------------------------------------------
// One token (decoding; the lm head of one position): `main1`
// ----------------------------------------------------------------------------------------------
// TPR1 = 64 threads share a row and RPW1 = 4 rows fill a 256-thread workgroup: eight times the
// threads of `main` per row, so that the small per-token products (k, v: 256 rows) still spread
// over the whole GPU and each thread's serial walk over the row is 8x shorter — decoding is
// latency-bound, not ALU-bound (on an H100, 64 threads per row beat 32 by 11 %, 32 beat 8 by 30 %). Each chunk goes through a fused dequantize-and-dot
// (dot.wgsl, f32 throughout); the row's 32 partials are summed as a tree in shared memory.
// Dispatch: (min(g, 32768), ceil(g / 32768), 1) workgroups, g = ceil(rows / RPW1); x is row 0.

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
    let row = (wid.x + wid.y * nwg.x) * RPW1 + lid / TPR1;
    var acc = 0.0;
    if (row < p.rows) {
        let nchunks = p.cols / 32u;
        let rb = row * p.row_bytes;
        for (var j = sub; j < nchunks; j += TPR1) {
            acc += DOT(rb + (j / SUBS) * BLOCK_BYTES, j % SUBS, j * 32u);
        }
    }
    red1[lid] = acc;
    workgroupBarrier();
    for (var r = TPR1 / 2u; r > 0u; r >>= 1u) {
        if (sub < r) {
            red1[lid] += red1[lid + r];
        }
        workgroupBarrier();
    }
    if (sub == 0u && row < p.rows) {
        var v = red1[lid];
        if (p.has_bias != 0u) {
            v += bias[p.out_off + row];
        }
        y[p.out_off + row] = v;
    }
}
