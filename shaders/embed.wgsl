// Embedding lookup: x (n, cols)[t] = dequant(token_embd row tokens[t]) × scale (Gemma: √n_embd).
//
// token_embd may be split by rows across several buffers: each chunk [row0, row0 + rows) is
// dispatched separately and writes only the tokens that fall in it.
// Dispatch: (n, 1, 1) workgroups of 64 threads. The host prepends the dequant sources.

struct Step {
    n_tok: u32,
    start: u32,
    out_row0: u32,
    n_out: u32,
}

struct EmbedParams {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    row0: u32,
    scale: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: EmbedParams;
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wid.x;
    if (t >= st.n_tok) {
        return;
    }
    let tok = tokens[t];
    if (tok < p.row0 || tok >= p.row0 + p.rows) {
        return;
    }
    let rb = (tok - p.row0) * p.row_bytes;
    for (var j = lid; j < p.cols / 32u; j += 64u) {
        DECODE(rb + (j / SUBS) * BLOCK_BYTES, j % SUBS);
        for (var i = 0u; i < 32u; i++) {
            x[t * p.cols + j * 32u + i] = dq[i] * p.scale;
        }
    }
}
