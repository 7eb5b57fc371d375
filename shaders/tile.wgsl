// One K step of the tiled batch product shared by `main` of matvec.wgsl and of
// matvec_fused.wgsl (matvec.wgsl's notes describe the tiling): 256 threads, RPW rows (slots) × NT
// tokens per workgroup, K in steps of one 32-weight chunk. The host appends this to both
// kernels, which declare `x` (n, cols) and `dq` (the decoders' output).

const RPW: u32 = 64u; // rows (slots) per workgroup: MATVEC_RPW, FUSED_RPW
const NT: u32 = 32u;  // tokens per workgroup: MATVEC_NT
var<workgroup> tile_w: array<vec4<f32>, 512>; // [k][RPW / 4]: decoded weights
var<workgroup> tile_x: array<vec2<f32>, 512>; // [k][NT / 2]: x

// Chunk `j` of rows `cols` long: thread lid < RPW has decoded its row's chunk into `dq` where
// `live` (a row that is not live counts as zeros); every thread loads four x values of token
// t0 + lid % NT (a token at or past `nt` counts as zeros). Returns the chunk's sums for the
// 4 rows × 2 tokens of thread (tr, tc) = (lid / 16, lid % 16): rows 4tr..4tr+3, tokens 2tc
// (first vec4) and 2tc + 1 (second). Two barriers: call it in uniform control flow.
fn tile_step(lid: u32, live: bool, j: u32, cols: u32, t0: u32, nt: u32) -> array<vec4<f32>, 2> {
    if (lid < RPW) {
        for (var i = 0u; i < 32u; i++) {
            tile_w[i * (RPW / 4u) + lid / 4u][lid % 4u] = select(0.0, dq[i], live);
        }
    }
    let xt = lid % NT;
    let xk = (lid / NT) * 4u;
    var xv = vec4<f32>(0.0);
    if (xt < nt) {
        let xo = (t0 + xt) * cols + j * 32u + xk;
        xv = vec4<f32>(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u]);
    }
    for (var c = 0u; c < 4u; c++) {
        tile_x[(xk + c) * (NT / 2u) + xt / 2u][xt % 2u] = xv[c];
    }
    workgroupBarrier();
    let tr = lid / 16u;
    let tc = lid % 16u;
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    for (var k = 0u; k < 32u; k++) {
        let w = tile_w[k * (RPW / 4u) + tr];
        let v = tile_x[k * (NT / 2u) + tc];
        s0 += w * v.x;
        s1 += w * v.y;
    }
    workgroupBarrier();
    return array<vec4<f32>, 2>(s0, s1);
}
