#!/usr/bin/env python3
# Independent float64 numpy reference forward pass for llama / qwen2 / gemma3 GGUF files.
# Derived from scripts/np_reference.py (llama only); made the reference logits of the three real models. Weights are dequantized exactly
# with gguf.quants.dequantize, tensor by tensor (never all weights of a model in float64 at once), all
# activations in float64, no activation quantization, exact softmax, exact (tanh-approx) GELU.
#
# Architecture details follow llama.cpp at commit 3f545bec (the commit that produced the golden files):
#   qwen2  : src/models/qwen2.cpp   -- llama block + q/k/v biases (build_qkv, src/llama-graph.cpp),
#            NEOX rope (llama_model_rope_type, src/llama-model.cpp), kq_scale 1/sqrt(head_dim),
#            SwiGLU, optional output.weight (else tied) and optional output.bias.
#   gemma3 : src/models/gemma3.cpp  -- embeddings * sqrtf(n_embd); RMSNorm weights used as stored (the
#            converter, conversion/gemma.py Gemma3Model.norm_shift, already added +1); per-head q_norm/k_norm
#            (RMS over head_dim) before rope; NEOX rope; rope base = rope_freq_base_train_swa (default 10000,
#            src/llama-hparams.h) on SWA layers and <arch>.rope.freq_base on the others
#            (llama_model::get_rope_freq_base); SWA layers via set_swa_pattern(6): is_swa = il % 6 < 5
#            (src/llama-hparams.cpp); SWA mask p1 - p0 >= n_swa is masked (llama_hparams::is_masked_swa);
#            Q scaled by f_attention_scale = 1/sqrt(n_embd_head_k) (not 27B) and kq_scale = 1;
#            post_attention_norm on the attention output before the residual add; ffn_norm; GeGLU
#            gelu_tanh(gate) * up; post_ffw_norm before the residual add; output_norm; tied output unless
#            output.weight exists; final logit softcapping only if <arch>.final_logit_softcapping is set.
#   llama  : as np_reference.py (NORM rope, adjacent pairs).
#
# usage: ref.py MODEL.gguf GOLDEN.json [GOLDEN2.json ...] [--save-dir=DIR] [--json=OUT.json]
#               [--emulate] [--public=GOLDEN.json]
#   Teacher forcing: every prompt is run over tokens + greedy.tokens[:-1]; the logits at position
#   len(tokens)-1 are the prompt's last-position logits (compared with last_logits.top20) and the logits at
#   len(tokens)-1+i are compared with greedy.tokens[i].
#   --emulate (diagnostic only): quantize matmul activations like ggml CPU (vec_dot_type) and use ggml's
#   fp16-table GELU; NOT exact math.
#   --base=X (diagnostic only): override <arch>.rope.freq_base.
#   --base-swa=X, --swa-period=N (gemma3, diagnostic only): override the local rope base / SWA pattern to check
#   that the comparison is sensitive to them.
import sys, json, math, time, numpy as np, gguf
from gguf.quants import dequantize

args = [a for a in sys.argv[1:] if not a.startswith('--')]
opts = {a.split('=')[0]: (a.split('=', 1)[1] if '=' in a else True) for a in sys.argv[1:] if a.startswith('--')}
path, goldens = args[0], args[1:]
EMUL = bool(opts.get('--emulate', False))

r = gguf.GGUFReader(path)
fld = lambda k, d=None: r.fields[k].contents() if k in r.fields else d
arch = fld('general.architecture')
A = lambda k, d=None: fld(f'{arch}.{k}', d)
n_layer = A('block_count'); n_embd = A('embedding_length'); n_head = A('attention.head_count')
n_head_kv = A('attention.head_count_kv'); eps = A('attention.layer_norm_rms_epsilon')
base = A('rope.freq_base', 10000.0)
if '--base' in opts: base = float(opts['--base'])  # diagnostic override of the (global) rope base
hd = A('attention.key_length', n_embd // n_head); hd_v = A('attention.value_length', n_embd // n_head)
assert hd == hd_v
n_rot = A('rope.dimension_count', hd); assert n_rot == hd
T = {t.name: t for t in r.tensors}

if arch == 'llama':
    neox = False
elif arch == 'qwen2':
    neox = True
elif arch == 'gemma3':
    neox = True
    n_swa = A('attention.sliding_window', 0)
    swa_period = A('attention.sliding_window_pattern', 6)
    base_swa = A('rope.freq_base_swa', 10000.0)
    if '--base-swa' in opts: base_swa = float(opts['--base-swa'])        # diagnostic override
    if '--swa-period' in opts: swa_period = int(opts['--swa-period'])    # diagnostic override
    softcap = A('final_logit_softcapping', 0.0)
    assert n_layer != 62  # 27B uses 1/sqrt(n_embd/n_head) as attention scale; not handled here
    attn_scale = 1.0 / math.sqrt(hd)
    is_swa = [n_swa > 0 and (swa_period == 0 or il % swa_period < swa_period - 1) for il in range(n_layer)]
else:
    raise SystemExit(f'unsupported arch {arch}')


def W(name, rows=None):
    """dequantize one tensor (or some of its rows) to float64, shape (out, in) like np_reference.py"""
    t = T[name]
    data = t.data if rows is None else t.data[rows]
    w = dequantize(data, t.tensor_type).astype(np.float64)
    shp = [int(x) for x in reversed(t.shape)]
    if rows is not None:
        shp[0] = w.shape[0]
    return w.reshape(shp)


def actq(x, wname):  # diagnostic emulation of ggml CPU activation quantization (vec_dot_type)
    if not EMUL: return x
    ty = T[wname].tensor_type.name
    if ty == 'F32': return x
    if ty == 'F16': return x.astype(np.float16).astype(np.float64)
    bs, f16scale = (256, False) if ty.endswith('_K') else (32, True)
    sh = x.shape; b = x.reshape(-1, bs)
    amax = np.abs(b).max(-1, keepdims=True)
    d = amax / 127.0
    d = d.astype(np.float16 if f16scale else np.float32).astype(np.float64)
    idd = np.where(amax > 0, 127.0 / np.where(amax > 0, amax, 1), 0)
    q = np.clip(np.rint(b * idd), -127, 127)
    return (q * d).reshape(sh)


def rms(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, b):  # x: (n, heads, hd)
    i = np.arange(hd // 2)
    theta = pos[:, None] * b ** (-2.0 * i / hd)  # (n, hd/2)
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    y = np.empty_like(x)
    if neox:  # LLAMA_ROPE_TYPE_NEOX: pairs (i, i + hd/2)
        x0, x1 = x[..., :hd // 2], x[..., hd // 2:]
        y[..., :hd // 2] = x0 * c - x1 * s; y[..., hd // 2:] = x0 * s + x1 * c
    else:     # LLAMA_ROPE_TYPE_NORM: adjacent pairs (2i, 2i+1)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y[..., 0::2] = x0 * c - x1 * s; y[..., 1::2] = x0 * s + x1 * c
    return y


def gelu_tanh(x):
    if EMUL:  # ggml CPU GGML_GELU_FP16 table: x<=-10 -> 0, x>=10 -> x, else fp16(gelu(fp16(x)))
        h = x.astype(np.float16).astype(np.float32)
        g = (0.5 * h * (1 + np.tanh(np.float32(0.7978845608028654) * h * (1 + np.float32(0.044715) * h * h)))).astype(np.float16).astype(np.float64)
        return np.where(x <= -10, 0.0, np.where(x >= 10, x, g))
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(seqs, out_pos):
    """seqs: list of token lists; out_pos: list of position lists whose logits are wanted.
    Processes all sequences layer by layer so each weight tensor is dequantized once."""
    # embeddings: dequantize only the rows needed
    xs = []
    for toks in seqs:
        uniq, inv = np.unique(np.array(toks), return_inverse=True)
        e = W('token_embd.weight', uniq)[inv]
        if arch == 'gemma3':
            e = e * math.sqrt(n_embd)
        xs.append(e)
    stats = [[] for _ in seqs]
    for l in range(n_layer):
        p = f'blk.{l}.'
        need = [n for n in T if n.startswith(p)]
        L = {n[len(p):]: W(n) for n in need}
        mm = lambda x, nm: actq(x, p + nm) @ L[nm].T
        bias = lambda nm: L.get(nm, 0.0)
        if arch == 'gemma3':
            b_l = base_swa if is_swa[l] else base
        else:
            b_l = base
        for si, x in enumerate(xs):
            n = x.shape[0]; pos = np.arange(n, dtype=np.float64)
            stats[si].append(float(np.abs(x).max()))
            h = rms(x, L['attn_norm.weight'])
            q = (mm(h, 'attn_q.weight') + bias('attn_q.bias')).reshape(n, n_head, hd)
            k = (mm(h, 'attn_k.weight') + bias('attn_k.bias')).reshape(n, n_head_kv, hd)
            v = (mm(h, 'attn_v.weight') + bias('attn_v.bias')).reshape(n, n_head_kv, hd)
            if arch == 'gemma3':
                q = rms(q, L['attn_q_norm.weight']); k = rms(k, L['attn_k_norm.weight'])
            q = rope(q, pos, b_l); k = rope(k, pos, b_l)
            if arch == 'gemma3':
                q = q * attn_scale; kq_scale = 1.0
            else:
                kq_scale = 1.0 / math.sqrt(hd)
            p0 = np.arange(n)[None, :]; p1 = np.arange(n)[:, None]
            masked = p0 > p1
            if arch == 'gemma3' and is_swa[l]:
                masked = masked | (p1 - p0 >= n_swa)
            mask = np.where(masked, -np.inf, 0.0)
            g = n_head // n_head_kv
            o = np.empty((n, n_head, hd))
            for hh in range(n_head):
                kk, vv = k[:, hh // g], v[:, hh // g]
                s = q[:, hh] @ kk.T * kq_scale + mask
                s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
                o[:, hh] = s @ vv
            a = mm(o.reshape(n, n_head * hd), 'attn_output.weight') + bias('attn_output.bias')
            if arch == 'gemma3':
                a = rms(a, L['post_attention_norm.weight'])
            x = x + a
            h = rms(x, L['ffn_norm.weight'])
            gt = mm(h, 'ffn_gate.weight'); up = mm(h, 'ffn_up.weight')
            if arch == 'gemma3':
                act = gelu_tanh(gt) * up
            else:
                act = gt / (1 + np.exp(-gt)) * up
            f = mm(act, 'ffn_down.weight')
            if arch == 'gemma3':
                f = rms(f, L['post_ffw_norm.weight'])
            xs[si] = x + f
        del L
    onw = W('output_norm.weight')
    hs = np.concatenate([rms(x[pp], onw) for x, pp in zip(xs, out_pos)])
    oname = 'output.weight' if 'output.weight' in T else 'token_embd.weight'
    n_vocab = int(T[oname].shape[1])
    logits = np.empty((hs.shape[0], n_vocab))
    hq = actq(hs, oname)
    CH = 16384
    for s0 in range(0, n_vocab, CH):
        w = W(oname, slice(s0, min(n_vocab, s0 + CH)))
        logits[:, s0:s0 + w.shape[0]] = hq @ w.T
        del w
    if 'output.bias' in T:
        logits += W('output.bias')
    if arch == 'gemma3' and softcap:
        logits = np.tanh(logits / softcap) * softcap
    res, o = [], 0
    for pp in out_pos:
        res.append(logits[o:o + len(pp)]); o += len(pp)
    return res, stats


def main():
    t0 = time.time()
    items = []  # (golden file, prompt)
    for gf in goldens:
        g = json.load(open(gf))
        for pr in g['prompts']:
            items.append((gf, pr))
    seqs = [pr['tokens'] + pr['greedy']['tokens'][:-1] for _, pr in items]
    out_pos = [list(range(len(pr['tokens']) - 1, len(pr['tokens']) - 1 + len(pr['greedy']['tokens']))) for _, pr in items]
    logits, stats = forward(seqs, out_pos)
    results = []
    for (gf, pr), lg_all, st in zip(items, logits, stats):
        lg = lg_all[0]
        top = np.argsort(-lg, kind='stable')[:20]
        gt20 = pr['last_logits']['top20']
        d = [abs(lg[i] - v) for i, v in gt20]
        steps = []
        for i, (tok, m) in enumerate(zip(pr['greedy']['tokens'], pr['greedy']['top1_minus_top2'])):
            l = lg_all[i]
            am = int(np.argmax(l))  # ties -> lowest id
            srt = np.sort(l)
            steps.append({'step': i, 'llamacpp_token': tok, 'llamacpp_margin': m, 'ref_argmax': am,
                          'ref_margin': float(srt[-1] - srt[-2]),
                          'ref_logit_gap_argmax_minus_llamacpp_token': float(l[am] - l[tok])})
        rr = {'golden': gf, 'name': pr['name'], 'n_tokens': len(pr['tokens']),
              'ref_argmax': int(top[0]), 'llamacpp_argmax': pr['last_logits']['argmax'],
              'ref_max': float(lg.max()), 'ref_mean': float(lg.mean()), 'ref_l2': float(np.sqrt((lg ** 2).sum())),
              'llamacpp_max': pr['last_logits']['max'], 'llamacpp_mean': pr['last_logits']['mean'],
              'llamacpp_l2': pr['last_logits']['l2'],
              'max_abs_diff_on_llamacpp_top20': float(max(d)), 'mean_abs_diff_on_llamacpp_top20': float(np.mean(d)),
              'top20_overlap': len(set(int(i) for i in top) & set(i for i, _ in gt20)),
              'max_abs_residual_per_layer_input': [round(s, 1) for s in st],
              'teacher_forcing': steps}
        results.append(rr)
        sd = opts.get('--save-dir')
        if sd and gf == opts.get('--public', goldens[0]):
            lg.astype('<f4').tofile(f'{sd}/last.{pr["name"]}.f32')
    out = {'emulate_act_quant_and_gelu_table': EMUL, 'overrides': {k: v for k, v in opts.items() if k in ('--base', '--base-swa', '--swa-period')}, 'model': path, 'arch': arch, 'goldens': goldens,
           'seconds': round(time.time() - t0, 1), 'results': results}
    if opts.get('--json'):
        json.dump(out, open(opts['--json'], 'w'), indent=1)
    for rr in results:
        tf = rr['teacher_forcing']
        print(f"{rr['golden'].split('/')[-1]:40s} {rr['name']:16s} argmax ref/llc {rr['ref_argmax']}/{rr['llamacpp_argmax']}"
              f" maxdiff {rr['max_abs_diff_on_llamacpp_top20']:.3f} mean {rr['mean_abs_diff_on_llamacpp_top20']:.3f}"
              f" ov {rr['top20_overlap']} tf-agree {sum(s['ref_argmax'] == s['llamacpp_token'] for s in tf)}/{len(tf)}")
    print('seconds', out['seconds'])


main()
