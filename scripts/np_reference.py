# (Copied from the project's shared tools; scripts/make-golden.sh runs it.)
# Independent float64 reference forward pass (numpy) for the llama-arch SmolLM2 GGUF files:
# weights dequantized with gguf.quants (exact dequantization), all activations in float64, no activation
# quantization, exact softmax. Used to measure how far llama.cpp's CPU logits are from "exact math".
# usage: np_reference.py MODEL.gguf GOLDEN.json [--all-prompts]
import sys, json, numpy as np, gguf
from gguf.quants import dequantize

path, golden = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(path)
f = lambda k: r.fields[k].contents()
n_layer = f('llama.block_count'); n_embd = f('llama.embedding_length'); n_head = f('llama.attention.head_count')
n_head_kv = f('llama.attention.head_count_kv'); eps = f('llama.attention.layer_norm_rms_epsilon'); base = f('llama.rope.freq_base')
hd = n_embd // n_head
W = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64).reshape([int(x) for x in reversed(t.shape)]) for t in r.tensors}
WT = {t.name: t.tensor_type.name for t in r.tensors}
EMUL = '--emulate-act-quant' in sys.argv  # emulate ggml CPU: activations quantized to the weight's vec_dot_type
def actq(x, wname):
    if not EMUL: return x
    ty = WT.get(wname, 'F32')
    if ty == 'F32': return x
    if ty == 'F16': return x.astype(np.float16).astype(np.float64)
    bs, f16scale = (256, False) if ty.endswith('_K') else (32, True)   # Q8_K (f32 scale) vs Q8_0/Q8_1 (f16 scale)
    sh = x.shape; b = x.reshape(-1, bs)
    amax = np.abs(b).max(-1, keepdims=True)
    d = amax / 127.0
    if f16scale: d = d.astype(np.float16).astype(np.float64)
    else: d = d.astype(np.float32).astype(np.float64)
    idd = np.where(amax > 0, 127.0 / np.where(amax > 0, amax, 1), 0)
    q = np.clip(np.rint(b * idd), -127, 127)
    return (q * d).reshape(sh)
def mm(x, wname): return actq(x, wname) @ W[wname].T
E = W['token_embd.weight']
out_w = W.get('output.weight', E)

def rms(x, w): return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w
def rope(x, pos):  # x: (n, heads, hd); llama.cpp LLAMA_ROPE_TYPE_NORM: adjacent pairs (2i, 2i+1)
    i = np.arange(hd // 2)
    theta = pos[:, None] * base ** (-2.0 * i / hd)  # (n, hd/2)
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y = np.empty_like(x); y[..., 0::2] = x0 * c - x1 * s; y[..., 1::2] = x0 * s + x1 * c
    return y

def forward(tokens, stats=None):
    n = len(tokens); pos = np.arange(n, dtype=np.float64)
    x = E[tokens]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(n_layer):
        p = f'blk.{l}.'
        h = rms(x, W[p + 'attn_norm.weight'])
        if stats is not None: stats.append(float(np.abs(x).max()))
        q = rope(mm(h, p + 'attn_q.weight').reshape(n, n_head, hd), pos)
        k = rope(mm(h, p + 'attn_k.weight').reshape(n, n_head_kv, hd), pos)
        v = mm(h, p + 'attn_v.weight').reshape(n, n_head_kv, hd)
        g = n_head // n_head_kv
        o = np.empty((n, n_head, hd))
        for hh in range(n_head):
            kk, vv = k[:, hh // g], v[:, hh // g]
            s = q[:, hh] @ kk.T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
            o[:, hh] = s @ vv
        x = x + mm(o.reshape(n, n_embd), p + 'attn_output.weight')
        h = rms(x, W[p + 'ffn_norm.weight'])
        gt = mm(h, p + 'ffn_gate.weight'); up = mm(h, p + 'ffn_up.weight')
        a = gt / (1 + np.exp(-gt)) * up
        x = x + mm(a, p + 'ffn_down.weight')
    x = rms(x, W['output_norm.weight'])
    return mm(x[-1:], 'output.weight' if 'output.weight' in W else 'token_embd.weight')[0]

g = json.load(open(golden))
res = []
for pr in g['prompts']:
    st = []
    lg = forward(pr['tokens'], st)
    top = np.argsort(-lg, kind='stable')[:20]
    gt20 = pr['last_logits']['top20']
    d = [abs(lg[i] - v) for i, v in gt20]
    res.append({'name': pr['name'], 'ref_argmax': int(top[0]), 'llamacpp_argmax': pr['last_logits']['argmax'],
                'ref_max': float(lg.max()), 'ref_mean': float(lg.mean()), 'ref_l2': float(np.sqrt((lg ** 2).sum())),
                'llamacpp_max': pr['last_logits']['max'], 'llamacpp_mean': pr['last_logits']['mean'], 'llamacpp_l2': pr['last_logits']['l2'],
                'max_abs_diff_on_llamacpp_top20': float(max(d)), 'mean_abs_diff_on_llamacpp_top20': float(np.mean(d)),
                'top20_overlap': len(set(int(i) for i in top) & set(i for i, _ in gt20)),
                'max_abs_residual_per_layer_input': [round(s, 1) for s in st]})
    for a in sys.argv[3:]:
        if a.startswith('--save='): lg.astype('<f4').tofile(a[7:] + f'.{pr["name"]}.f32')
print(json.dumps({'emulate_act_quant': EMUL, 'model': path, 'golden': golden, 'results': res}, indent=1))
