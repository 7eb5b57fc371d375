// RMSNorm / LayerNorm × weight and residual adds. One workgroup (256 threads) per row of `dim` values.
//   RMS:   out = v / sqrt(mean(v²) + eps) * w
//   Layer: out = (v − mean) / sqrt(mean((v − mean)²) + eps) * w + bias   (p.layer; bias = w[dim..])
//
// norm_rows:    b[r] = norm(a[r + src]) * w           r < dispatched rows; src = st.out_row0
//                                                     when p.from_out != 0 (final norm), else 0
// scale_rows:   b[r] = a[r] * w                      (the input of a product that norms itself)
// add_norm:     b[r] += (norm(a[r]) * w) * scale  (p.has_w) or b[r] += a[r] * scale
//               (residual, post-norms, Granite's residual scale)
// Dispatch: (rows, 1, 1).

struct Step {
    n_tok: u32,
    start: u32,
    out_row0: u32,
    n_out: u32,
}

struct NormParams {
    dim: u32,
    eps: f32,
    from_out: u32,
    has_w: u32,
    layer: u32,
    scale: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: NormParams;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;
@group(0) @binding(4) var<storage, read_write> b: array<f32>;

var<workgroup> red: array<f32, 256>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn inv_rms(ss: f32) -> f32 {
    return 1.0 / sqrt(ss / f32(p.dim) + p.eps);
}

@compute @workgroup_size(256)
fn norm_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let src = select(0u, st.out_row0, p.from_out != 0u);
    let ai = (wid.x + src) * p.dim;
    let bi = wid.x * p.dim;
    if (p.layer != 0u) {
        var sum = 0.0;
        for (var i = lid; i < p.dim; i += 256u) {
            sum += a[ai + i];
        }
        let mean = reduce_sum(sum, lid) / f32(p.dim);
        var sv = 0.0;
        for (var i = lid; i < p.dim; i += 256u) {
            let d = a[ai + i] - mean;
            sv += d * d;
        }
        let inv = 1.0 / sqrt(reduce_sum(sv, lid) / f32(p.dim) + p.eps);
        for (var i = lid; i < p.dim; i += 256u) {
            b[bi + i] = (a[ai + i] - mean) * inv * w[i] + w[p.dim + i];
        }
        return;
    }
    var ss = 0.0;
    for (var i = lid; i < p.dim; i += 256u) {
        ss += a[ai + i] * a[ai + i];
    }
    let scale = inv_rms(reduce_sum(ss, lid));
    for (var i = lid; i < p.dim; i += 256u) {
        b[bi + i] = a[ai + i] * scale * w[i];
    }
}

@compute @workgroup_size(256)
fn add_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let bi = wid.x * p.dim;
    if (p.has_w == 0u) {
        for (var i = lid; i < p.dim; i += 256u) {
            b[bi + i] += a[bi + i] * p.scale;
        }
        return;
    }
    var ss = 0.0;
    for (var i = lid; i < p.dim; i += 256u) {
        ss += a[bi + i] * a[bi + i];
    }
    let scale = inv_rms(reduce_sum(ss, lid));
    for (var i = lid; i < p.dim; i += 256u) {
        b[bi + i] += (a[bi + i] * scale * w[i]) * p.scale;
    }
}

@compute @workgroup_size(256)
fn scale_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let bi = wid.x * p.dim;
    for (var i = lid; i < p.dim; i += 256u) {
        b[bi + i] = a[bi + i] * w[i];
    }
}
