// Logit post-processing and greedy sampling on the GPU.
//   finish: logits (n_out, n_vocab) += bias; × scale (Granite); then soft-capping cap·tanh(l / cap)
//           when cap > 0.
//           Dispatch: (min(groups, 32768), ceil(groups / 32768), 1), groups = ceil(n_out·n_vocab / 256).
//   argmax: result[0] = argmax of the last logits row (ties → lowest id). Dispatch: (1, 1, 1).

struct Step {
    n_tok: u32,
    start: u32,
    out_row0: u32,
    n_out: u32,
}

struct ArgmaxParams {
    n_vocab: u32,
    has_bias: u32,
    cap: f32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: ArgmaxParams;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;
@group(0) @binding(4) var<storage, read_write> result: array<u32>;

@compute @workgroup_size(256)
fn finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= st.n_out * p.n_vocab) {
        return;
    }
    var l = logits[i];
    if (p.has_bias != 0u) {
        l += bias[i % p.n_vocab];
    }
    l = l * p.scale;
    if (p.cap > 0.0) {
        l = tanh(clamp(l / p.cap, -15.0, 15.0)) * p.cap;
    }
    logits[i] = l;
}

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

@compute @workgroup_size(256)
fn argmax(@builtin(local_invocation_index) lid: u32) {
    let base = (st.n_out - 1u) * p.n_vocab;
    var bv = -3.4e38;
    var bi = 0xffffffffu;
    for (var i = lid; i < p.n_vocab; i += 256u) {
        let v = logits[base + i];
        if (v > bv || bi == 0xffffffffu) {
            bv = v;
            bi = i;
        }
    }
    best_v[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let ov = best_v[lid + s];
            let oi = best_i[lid + s];
            if (ov > best_v[lid] || (ov == best_v[lid] && oi < best_i[lid])) {
                best_v[lid] = ov;
                best_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        result[0] = best_i[0];
    }
}
