// Quantized matrix × activations: y (n, out_stride)[:, out_off + r] = W (rows, cols) · x (n, cols) + bias.
//
// W is one row-chunk of a GGUF tensor, its blocks as-is in `wq` (a tensor larger than the binding
// limit is split by rows: each chunk is dispatched with its own `out_off`). f32 accumulation
// throughout. Prefill (n ≤ max batch) uses `main`, a tiled matrix × matrix product (256 threads,
// 64 rows × 32 tokens per workgroup, weights decoded into workgroup memory: see below); one
// token uses `main1` (further below).
// The host prepends: `const BLOCK_BYTES`, `const SUBS`, the dequant sources, and replaces DECODE.

struct Step {
    n_tok: u32,     // tokens in this batch
    start: u32,     // position of the first one
    out_row0: u32,  // first row that needs logits
    n_out: u32,     // rows that need logits
}

struct MatvecParams {
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
@group(0) @binding(1) var<uniform> p: MatvecParams;
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;

// ----------------------------------------------------------------------------------------------
// Batch (prefill): `main`, a tiled matrix × matrix product
// ----------------------------------------------------------------------------------------------
// A workgroup of 256 threads computes a tile of RPW = 64 rows × NT = 32 tokens. It walks K in
// steps of one 32-weight chunk: threads 0..63 each decode the chunk of one row (the decoders of
// dequant_*.wgsl, into `dq`) and store it in workgroup memory, every thread loads 4 values of
// the 32-token × 32 x tile, one barrier; then thread (tr, tc) = (lid / 16, lid % 16) multiplies
// rows 4tr..4tr+3 by tokens 2tc, 2tc+1 (a 4 × 2 register tile: per k one vec4 of weights and
// one vec2 of x from workgroup memory, 8 FMAs), one barrier. Each weight is thus decoded once
// per 32 tokens (the 8 × 8 kernel before this one: once per 8) and x is read from workgroup
// memory, each value used by 64 rows. Both tiles are stored transposed ([k][row], [k][token]):
// the decoding threads write consecutive floats per k, and a thread's rows (tokens) are one
// aligned vec4 (vec2), read by a warp as 2 broadcast vec4s and 16 consecutive vec2s — no bank
// conflicts. Per step the chunk's 32 products are summed first, then added to the accumulator
// (f32 throughout, as before). Workgroup memory: 64 × 32 × 4 + 32 × 32 × 4 B = 12 KiB (of the
// 16 KiB WebGPU guarantees).
//
// Dispatch: (min(g, 32768), ceil(g / 32768), ceil(n / NT)) workgroups, g = ceil(rows / RPW).

// RPW, NT, the tiles and the K step (`tile_step`) are tile.wgsl's, appended by the host.

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = (wid.x + wid.y * nwg.x) * RPW;
    let t0 = wid.z * NT;
    let n = select(st.n_tok, st.n_out, p.tok_mode == 1u);
    let nt = min(NT, n - min(n, t0));
    let tr = lid / 16u;
    let tc = lid % 16u;
    // thread lid < RPW decodes row row0 + lid
    let live = lid < RPW && row0 + lid < p.rows;
    var acc0 = vec4<f32>(0.0); // rows 4tr..4tr+3, token 2tc
    var acc1 = vec4<f32>(0.0); // token 2tc+1
    let nchunks = p.cols / 32u;
    for (var j = 0u; j < nchunks; j++) {
        if (live) {
            DECODE((row0 + lid) * p.row_bytes + (j / SUBS) * BLOCK_BYTES, j % SUBS);
        }
        let s = tile_step(lid, live, j, p.cols, t0, nt);
        acc0 += s[0];
        acc1 += s[1];
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + 4u * tr + i;
        if (row >= p.rows) {
            continue;
        }
        var b = 0.0;
        if (p.has_bias != 0u) {
            b = bias[p.out_off + row];
        }
        let o = p.out_off + row;
        if (2u * tc < nt) {
            y[(t0 + 2u * tc) * p.out_stride + o] = acc0[i] + b;
        }
        if (2u * tc + 1u < nt) {
            y[(t0 + 2u * tc + 1u) * p.out_stride + o] = acc1[i] + b;
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
