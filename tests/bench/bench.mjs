// Page script of bench.html: runs one engine on one GGUF and measures it, in the page.
//
//   window.bench.ours(opts)    our wasm CPU engine: the app's worker (/worker_loader.js from dist/),
//                              driven by the protocol of app/src/protocol.rs (backend "cpu"); with
//                              threads > 1 the threaded build (/worker_mt_loader.js, made by
//                              scripts/build-worker-mt.sh) told `Threads{threads}` (it must answer
//                              with that many)
//   window.bench.wllama(opts)  wllama (@wllama/wllama from ./node_modules, its one wasm build with
//                              n_threads: threads — 1: no pthreads — and n_gpu_layers: 0, so no
//                              WebGPU)
//
// opts: { modelUrl, prompt, nPredict, warmup, warmupTokens, threads, kernels, build } (defaults below; ours: build
// `mt` = the threaded worker at any thread count, 1 included; kernels
// `simd128` = `?kernels=simd128` on the worker's URL, the default build even where the relaxed-SIMD
// one would load; wllama also takes keepLog: return its whole log). More than one thread needs a cross-origin isolated page (serve.py sends
// COOP/COEP). Both engines get the same bytes
// (fetched once per call), the same raw prompt (no chat template), greedy sampling and
// ignore_eos, so both generate exactly nPredict tokens. With `warmup`, an untimed generation of
// warmupTokens tokens on another prompt runs first (wasm tier-up: V8 compiles the hot functions
// again, optimized, on background threads, which compete with the engine's own threads when they
// take every core), then the timed one.
//
// Timing is the same for both, with performance.now() in the page around each engine's API:
//   t0     the request is sent (Generate message / createCompletion call)
//   tFirst the first generated token arrives (Token message / first streamed chunk)
//   tEnd   the engine says it is done (Done message / final chunk with finish_reason)
//   prefill tok/s = prompt tokens / (tFirst - t0)      (the first token comes from the prefill)
//   decode tok/s  = (tokens - 1) / (tEnd - tFirst)
// Each engine's own figures are returned too (ours: Done.prefill_tok_s/decode_tok_s; wllama:
// llama.cpp's timings.prompt_per_second/predicted_per_second), as a cross-check.
//
// Results are plain JSON objects; any failure rejects with an Error whose message says what went
// wrong. Run it with scripts/bench-browser.sh, or open /bench/bench.html by hand.

export const DEFAULTS = {
  modelUrl: '/models/SmolLM2-135M-Instruct.Q4_1.gguf',
  // About 64 tokens with the SmolLM2 tokenizer (the runs print the exact count).
  prompt:
    'The history of the printing press begins in the fifteenth century, when Johannes Gutenberg ' +
    'combined movable metal type, oil-based ink and a wooden screw press. Within a few decades, ' +
    'print shops had spread to more than two hundred European cities, books became far cheaper, ' +
    'and new ideas travelled faster than ever before. Historians often argue that',
  nPredict: 64,
  warmup: true,
  warmupTokens: 16,
  threads: 1,
};
const WARMUP_PROMPT = 'Once upon a time, in a small village by the sea,';
const CHUNK = 4 << 20; // the app's chunk size (app/src/cache.rs CHUNK_BYTES)
const WLLAMA_ESM = new URL('./node_modules/@wllama/wllama/esm/', import.meta.url);

async function fetchModel(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`fetching ${url}: HTTP ${res.status} ${res.statusText}`);
  return await res.arrayBuffer();
}

function rate(count, ms) {
  return ms > 0 ? (count * 1000) / ms : NaN;
}

// ---------------------------------------------------------------------------------------------
// Ours
// ---------------------------------------------------------------------------------------------

// Route the worker's messages to `onMessage(msg, now)` until it returns something other than
// undefined (the promise's value). An Error message, a worker error or a non-JSON message rejects.
function until(worker, what, onMessage) {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e) => {
      const now = performance.now();
      if (e.data instanceof ArrayBuffer) return; // a KV snapshot's bytes (not asked for; ignored)
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        reject(new Error(`ours: worker sent a non-JSON message while waiting for ${what}: ${String(e.data).slice(0, 200)}`));
        return;
      }
      if (msg.type === 'Error') {
        reject(new Error(`ours: worker error while waiting for ${what}: ${msg.message}`));
        return;
      }
      try {
        const r = onMessage(msg, now);
        if (r !== undefined) resolve(r);
      } catch (err) {
        reject(err);
      }
    };
    worker.onerror = (e) => reject(new Error(`ours: worker failed while waiting for ${what}: ${e.message || e}`));
    worker.onmessageerror = () => reject(new Error(`ours: undecodable worker message while waiting for ${what}`));
  });
}

async function oursGenerate(worker, prompt, nPredict) {
  const params = {
    temperature: 0, top_k: 0, top_p: 1, max_tokens: nPredict, n_ctx: 0,
    raw: true, ignore_eos: true, seed: 0, snapshot: false,
  };
  let tFirst = null;
  let text = '';
  let nTok = 0;
  const done = until(worker, 'Done', (m, now) => {
    if (m.type === 'Token') {
      if (tFirst === null) tFirst = now;
      if (m.id !== null && m.id !== undefined) nTok += 1;
      text += m.piece;
    } else if (m.type === 'Done') {
      return { m, now };
    }
    return undefined;
  });
  const t0 = performance.now();
  worker.postMessage(JSON.stringify({ type: 'Generate', messages: [{ role: 'user', content: prompt }], params }));
  const { m, now: tEnd } = await done;
  if (tFirst === null) throw new Error('ours: Done without any Token');
  if (m.tokens !== nPredict) {
    throw new Error(`ours: generated ${m.tokens} tokens, expected ${nPredict} (stop: ${m.stop})`);
  }
  if (nTok !== m.tokens) throw new Error(`ours: ${nTok} Token messages but Done says ${m.tokens}`);
  return {
    promptTokens: m.prompt_tokens,
    tokens: m.tokens,
    ttftMs: tFirst - t0,
    decodeMs: tEnd - tFirst,
    prefillTokS: rate(m.prompt_tokens, tFirst - t0),
    decodeTokS: rate(m.tokens - 1, tEnd - tFirst),
    enginePrefillTokS: m.prefill_tok_s,
    engineDecodeTokS: m.decode_tok_s,
    stop: m.stop,
    text,
  };
}

async function ours(opts = {}) {
  const o = { ...DEFAULTS, ...opts };
  const bytes = await fetchModel(o.modelUrl);
  const mt = o.threads > 1 || o.build === 'mt';
  if (mt && !self.crossOriginIsolated) throw new Error('ours: the threaded worker (threads > 1, or build mt) needs a cross-origin isolated page');
  const url = new URL(mt ? '/worker_mt_loader.js' : '/worker_loader.js', location.href);
  if (o.kernels) url.searchParams.set('kernels', o.kernels);
  const worker = new Worker(url);
  try {
    await until(worker, 'Ready', (m) => (m.type === 'Ready' ? true : undefined));
    if (mt) {
      const threadsUp = until(worker, 'Threads', (m) => (m.type === 'Threads' ? m.threads : undefined));
      worker.postMessage(JSON.stringify({ type: 'Threads', threads: o.threads }));
      const n = await threadsUp;
      if (n !== o.threads) throw new Error(`ours: asked for ${o.threads} threads, the engine runs ${n}`);
    }
    const tLoad = performance.now();
    const loaded = until(worker, 'Loaded', (m) => (m.type === 'Loaded' ? m : undefined));
    const name = o.modelUrl.split('/').pop();
    worker.postMessage(JSON.stringify({ type: 'LoadStart', size: bytes.byteLength, name, backend: 'cpu' }));
    for (let off = 0; off < bytes.byteLength; off += CHUNK) {
      const chunk = bytes.slice(off, Math.min(off + CHUNK, bytes.byteLength));
      worker.postMessage(chunk, [chunk]);
    }
    worker.postMessage(JSON.stringify({ type: 'LoadEnd' }));
    const info = await loaded;
    const loadMs = performance.now() - tLoad;
    if (info.backend?.kind !== 'cpu') {
      throw new Error(`ours: expected the CPU engine, got ${JSON.stringify(info.backend)}`);
    }
    if (o.warmup) await oursGenerate(worker, WARMUP_PROMPT, o.warmupTokens);
    const r = await oursGenerate(worker, o.prompt, o.nPredict);
    const t = `${o.threads} thread${o.threads === 1 ? '' : 's'}`;
    return { engine: 'ours', threads: o.threads, loadMs, backend: `cpu (${info.arch}, ${info.n_params} params, ${t})`, ...r };
  } finally {
    worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// wllama
// ---------------------------------------------------------------------------------------------

async function wllamaGenerate(wllama, prompt, nPredict) {
  let tFirst = null;
  let final = null;
  let tEnd = null;
  let text = '';
  let chunks = 0;
  const t0 = performance.now();
  await wllama.createCompletion({
    prompt,
    max_tokens: nPredict,
    temperature: 0,
    top_k: 1,
    top_p: 1,
    min_p: 0,
    ignore_eos: true,
    cache_prompt: false, // no reuse of the previous request's KV cache: every run prefills
    seed: 0,
    stream: true,
    onData: (chunk) => {
      const now = performance.now();
      const choice = chunk.choices?.[0];
      if (!choice) return;
      chunks += 1;
      text += choice.text ?? '';
      if (tFirst === null) tFirst = now;
      if (choice.finish_reason) {
        final = chunk;
        tEnd = now;
      }
    },
  });
  if (tFirst === null || final === null) throw new Error('wllama: the stream ended without tokens or without a final chunk');
  const promptTokens = final.usage?.prompt_tokens ?? final.timings?.prompt_n;
  const tokens = final.usage?.completion_tokens ?? final.timings?.predicted_n;
  if (promptTokens === undefined || tokens === undefined) {
    throw new Error(`wllama: the final chunk has no usage or timings: ${JSON.stringify(final).slice(0, 300)}`);
  }
  if (tokens !== nPredict) {
    throw new Error(`wllama: generated ${tokens} tokens, expected ${nPredict} (finish_reason: ${final.choices[0].finish_reason})`);
  }
  return {
    promptTokens,
    tokens,
    ttftMs: tFirst - t0,
    decodeMs: tEnd - tFirst,
    prefillTokS: rate(promptTokens, tFirst - t0),
    decodeTokS: rate(tokens - 1, tEnd - tFirst),
    enginePrefillTokS: final.timings?.prompt_per_second ?? NaN,
    engineDecodeTokS: final.timings?.predicted_per_second ?? NaN,
    stop: final.choices[0].finish_reason,
    chunks,
    text,
  };
}

async function wllama(opts = {}) {
  const o = { ...DEFAULTS, ...opts };
  const { Wllama } = await import(new URL('index.js', WLLAMA_ESM).href);
  const bytes = await fetchModel(o.modelUrl);
  const log = [];
  const keep = (level) => (...args) => {
    const line = args.map(String).join(' ');
    log.push(`${level}: ${line}`);
    if (level === 'error') console.error('[wllama]', line);
  };
  const w = new Wllama(
    { default: new URL('wasm/wllama.wasm', WLLAMA_ESM).href },
    { logger: { debug: keep('debug'), log: keep('log'), warn: keep('warn'), error: keep('error') } },
  );
  try {
    const tLoad = performance.now();
    await w.loadModel([new Blob([bytes])], {
      n_threads: o.threads,
      n_gpu_layers: 0, // CPU only (wllama then also skips WebGPU device initialisation)
      n_ctx: 512,
      n_parallel: 1,
      seed: 0,
    });
    const loadMs = performance.now() - tLoad;
    if (w.isMultithread() !== o.threads > 1 || w.getNumThreads() !== o.threads) {
      throw new Error(`wllama: expected ${o.threads} thread(s), got multithread=${w.isMultithread()} threads=${w.getNumThreads()}`);
    }
    const gpuLine = log.find((l) => /offloaded [1-9]\d*\/\d+ layers to GPU|using device WebGPU/i.test(l));
    if (gpuLine) throw new Error(`wllama: layers went to the GPU: ${gpuLine}`);
    if (o.warmup) await wllamaGenerate(w, WARMUP_PROMPT, o.warmupTokens);
    const r = await wllamaGenerate(w, o.prompt, o.nPredict);
    const sysInfo = log.find((l) => /system_info|system info/i.test(l));
    return {
      engine: 'wllama',
      threads: o.threads,
      loadMs,
      backend: `cpu (${o.threads} thread(s), multithread=${w.isMultithread()})${sysInfo ? `; ${sysInfo.slice(0, 200)}` : ''}`,
      ...r,
      ...(o.keepLog ? { log } : {}),
    };
  } finally {
    await w.exit().catch(() => {});
  }
}

window.bench = { ours, wllama, DEFAULTS };

// By hand: run each engine once and show the results.
{
  const q = new URLSearchParams(location.search);
  const modelUrl = q.get('model') || DEFAULTS.modelUrl;
  const threads = Number(q.get('threads') || DEFAULTS.threads);
  const out = document.getElementById('out');
  const btn = document.getElementById('run');
  if (out && btn) {
    document.getElementById('model').textContent = modelUrl;
    out.textContent = 'ready';
    btn.disabled = false;
    btn.onclick = async () => {
      btn.disabled = true;
      out.textContent = '';
      for (const engine of ['ours', 'wllama']) {
        out.textContent += `${engine}: running…\n`;
        try {
          const r = await window.bench[engine]({ modelUrl, threads });
          out.textContent += `${engine}: prefill ${r.prefillTokS.toFixed(1)} tok/s (${r.promptTokens} tokens), ` +
            `decode ${r.decodeTokS.toFixed(1)} tok/s (${r.tokens} tokens); engine's own: ` +
            `${r.enginePrefillTokS.toFixed(1)} / ${r.engineDecodeTokS.toFixed(1)}\n  ${JSON.stringify(r.text)}\n`;
        } catch (e) {
          out.textContent += `${engine}: FAILED: ${e.message}\n`;
        }
      }
      btn.disabled = false;
    };
  }
}
