// FFN activation, in place on `gate`: g = act(g) × u over (n, n_ff) values (p.gated), or
// g = act(g) for a plain MLP (StarCoder 2: `up`'s output is in g).
//   act = SiLU (x / (1 + e^-x)), or GELU-tanh (p.gelu != 0).
// Dispatch: (min(groups, 32768), ceil(groups / 32768), 1) with groups = ceil(n·n_ff / 256).

struct Step {
    n_tok: u32,
    start: u32,
    out_row0: u32,
    n_out: u32,
}

struct FfnParams {
    n_ff: u32,
    gelu: u32,
    gated: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<uniform> p: FfnParams;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;

fn gelu_tanh(x: f32) -> f32 {
    let a = clamp(0.7978846 * (x + 0.044715 * x * x * x), -15.0, 15.0);
    return 0.5 * x * (1.0 + tanh(a));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= st.n_tok * p.n_ff) {
        return;
    }
    let x = g[i];
    var a: f32;
    if (p.gelu != 0u) {
        a = gelu_tanh(x);
    } else {
        a = x / (1.0 + exp(-x));
    }
    if (p.gated != 0u) {
        a = a * u[i];
    }
    g[i] = a;
}
