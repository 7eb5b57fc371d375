// Benchmark driver: our wasm CPU engine vs wllama, at 1 thread (and more: THREADS), in headless Chromium (the system
// /usr/bin/chromium through playwright-core; no browser download). scripts/bench-browser.sh serves
// dist/, this folder (at /bench/) and models/, then runs this.
//
// RUNS rounds; each round runs both engines at every thread count (THREADS), alternating which
// engine and which count go first, so that a drift of the machine's speed during the run falls on
// every figure alike (the ratios between thread counts are measured side by side, and each
// round's own ratio is printed too). Every engine run gets a
// fresh browser context and page (nothing cached or warmed from an earlier run, beyond Chromium's
// on-disk wasm code cache, which both engines share alike); in the page, bench.mjs loads the
// model, does a short untimed warm-up generation, then the timed one (see bench.mjs for what is
// measured). Prints each run, then a table of medians and the ratio ours/wllama, then both texts
// (greedy on the same model should agree). Exits non-zero if any run fails.
//
// env: BASE_URL (default http://127.0.0.1:8092/), MODEL_URL (default
//      /models/SmolLM2-135M-Instruct.Q4_1.gguf), RUNS (default 5), N_PREDICT (default 64),
//      WARMUP (default 1; 0 = no warm-up generation), WARMUP_TOKENS (default 16: tokens of the
//      warm-up generation; with all cores busy, V8's optimizing compiler, still running after a
//      short one, takes a core from the timed run), RUN_TIMEOUT_S (default 600, per engine run),
//      CHROMIUM (default /usr/bin/chromium), THREADS (default 1; a list such as 1,2 runs the
//      comparison at each count, interleaved: ours > 1 is the threaded worker, wllama > 1 its
//      pthreads),
//      KERNELS (ours: `simd128` loads the default build even where relaxed SIMD validates, see
//      scripts/build-worker-relaxed.sh; default: the loader's choice), CHROMIUM_ARGS (extra
//      Chromium flags, space-separated, e.g. --js-flags=--liftoff-only), OURS_BUILD (`mt`: ours runs
//      the threaded worker at every count, 1 included: what the threaded build costs per thread)
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL || 'http://127.0.0.1:8092/';
const MODEL_URL = process.env.MODEL_URL || '/models/SmolLM2-135M-Instruct.Q4_1.gguf';
const RUNS = intEnv('RUNS', 5);
const N_PREDICT = intEnv('N_PREDICT', 64);
const WARMUP = process.env.WARMUP !== '0';
const WARMUP_TOKENS = intEnv('WARMUP_TOKENS', 16);
const RUN_TIMEOUT_MS = intEnv('RUN_TIMEOUT_S', 600) * 1000;
const ENGINES = ['ours', 'wllama'];
const THREADS = (process.env.THREADS || '1').split(',').map((t) => {
  const n = Number(t.trim());
  if (!Number.isInteger(n) || n < 1) {
    console.error(`error: THREADS=${process.env.THREADS}: expected positive integers, e.g. 1,2`);
    process.exit(2);
  }
  return n;
});
if (new Set(THREADS).size !== THREADS.length) {
  // Results are kept per count, and each round pairs one run of each count.
  console.error(`error: THREADS=${process.env.THREADS}: a count is listed twice`);
  process.exit(2);
}

function intEnv(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`error: ${name}=${v}: expected a positive integer`);
    process.exit(2);
  }
  return n;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : String(x));

async function runOnce(browser, engine, threads) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  page.on('crash', () => logs.push('[page crashed]'));
  let timer;
  try {
    const url = new URL('bench/bench.html', BASE_URL).href;
    const res = await page.goto(url);
    if (!res || !res.ok()) throw new Error(`GET ${url}: HTTP ${res ? res.status() : 'no response'}`);
    await page.waitForFunction(() => window.bench, null, { timeout: 30_000 });
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${engine}: no result after ${RUN_TIMEOUT_MS / 1000} s`)), RUN_TIMEOUT_MS);
    });
    const opts = { modelUrl: MODEL_URL, nPredict: N_PREDICT, warmup: WARMUP, warmupTokens: WARMUP_TOKENS, threads, kernels: process.env.KERNELS || '', build: process.env.OURS_BUILD || '' };
    return await Promise.race([page.evaluate(([e, o]) => window.bench[e](o), [engine, opts]), timeout]);
  } catch (e) {
    const tail = logs.slice(-30).join('\n');
    throw new Error(`${e.message}${tail ? `\n--- browser console (last 30) ---\n${tail}` : ''}`);
  } finally {
    clearTimeout(timer);
    await context.close().catch(() => {});
  }
}

function commonPrefix(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic',
      ...(process.env.CHROMIUM_ARGS || '').split(' ').filter((a) => a)],
  });
  const results = Object.fromEntries(THREADS.map((t) => [t, { ours: [], wllama: [] }]));
  const tn = (t) => `${t} thread${t === 1 ? '' : 's'}`;
  try {
    console.log(`model ${MODEL_URL}, ${N_PREDICT} tokens greedy, ${THREADS.map(tn).join(' and ')}` +
      `${THREADS.length > 1 ? ' (interleaved: each round runs every count)' : ''}, ${RUNS} runs per engine` +
      `${WARMUP ? `, warm-up generation (${WARMUP_TOKENS} tokens) before each timed one` : ''}; Chromium ${browser.version()}` +
      `${process.env.KERNELS ? `; ours: kernels=${process.env.KERNELS}` : ''}`);
    for (let i = 0; i < RUNS; i++) {
      const counts = i % 2 === 0 ? THREADS : [...THREADS].reverse();
      for (const [j, threads] of counts.entries()) {
        const order = (i + j) % 2 === 0 ? ENGINES : [...ENGINES].reverse();
        for (const engine of order) {
          const r = await runOnce(browser, engine, threads);
          results[threads][engine].push(r);
          console.log(`run ${i + 1}/${RUNS}${THREADS.length > 1 ? ` ${threads}t` : ''} ${engine.padEnd(6)} prefill ${f1(r.prefillTokS).padStart(7)} tok/s ` +
            `(${r.promptTokens} tok in ${r.ttftMs.toFixed(0)} ms)  decode ${f1(r.decodeTokS).padStart(6)} tok/s ` +
            `(${r.tokens} tok)  engine's own: ${f1(r.enginePrefillTokS)} / ${f1(r.engineDecodeTokS)}  ` +
            `load ${(r.loadMs / 1000).toFixed(1)} s` + (r.chunks !== undefined ? `  chunks ${r.chunks}` : ''));
        }
      }
    }
  } finally {
    await browser.close().catch(() => {});
  }
  for (const threads of THREADS) {
    if (THREADS.length > 1) console.log(`\n===== ${tn(threads)} =====`);
    report(results[threads]);
  }
  if (THREADS.length > 1) {
    // Decode at each count against the first count: the ratio of the medians, and the median of
    // each round's own ratio (its runs ran minutes apart at most).
    const base = THREADS[0];
    console.log(`\ndecode scaling against ${tn(base)}`);
    for (const threads of THREADS.slice(1)) {
      for (const engine of ENGINES) {
        const a = results[base][engine].map((r) => r.decodeTokS);
        const b = results[threads][engine].map((r) => r.decodeTokS);
        const rounds = b.map((x, k) => x / a[k]);
        console.log(`${engine.padEnd(7)} ${tn(threads)}: ${(median(b) / median(a)).toFixed(2)}x (medians ${f1(median(b))} / ${f1(median(a))}); ` +
          `per round ${rounds.map((x) => x.toFixed(2)).join(' ')}, median ${median(rounds).toFixed(2)}x`);
      }
    }
  }
}

function report(results) {
  const row = (cells, widths) => cells.map((c, j) => String(c).padEnd(widths[j])).join('  ');
  const widths = [7, 14, 13, 20, 19];
  console.log('');
  console.log('medians (wall clock in the page, performance.now(); tok/s)');
  console.log(row(['engine', 'prefill median', 'decode median', 'engine-own prefill', 'engine-own decode'], widths));
  const med = {};
  for (const engine of ENGINES) {
    const rs = results[engine];
    med[engine] = {
      prefill: median(rs.map((r) => r.prefillTokS)),
      decode: median(rs.map((r) => r.decodeTokS)),
      ownPrefill: median(rs.map((r) => r.enginePrefillTokS)),
      ownDecode: median(rs.map((r) => r.engineDecodeTokS)),
    };
    const m = med[engine];
    console.log(row([engine, f1(m.prefill), f1(m.decode), f1(m.ownPrefill), f1(m.ownDecode)], widths));
  }
  console.log('');
  console.log('each run (prefill / decode tok/s)');
  for (const engine of ENGINES) {
    console.log(`${engine.padEnd(7)} ${results[engine].map((r) => `${f1(r.prefillTokS)}/${f1(r.decodeTokS)}`).join('  ')}`);
  }
  const ratio = (k) => med.ours[k] / med.wllama[k];
  console.log('');
  console.log(`ratio ours/wllama: decode ${ratio('decode').toFixed(2)}, prefill ${ratio('prefill').toFixed(2)}` +
    `  (engine-own figures: decode ${ratio('ownDecode').toFixed(2)}, prefill ${ratio('ownPrefill').toFixed(2)})`);

  // Same prompt, same tokens?
  const problems = [];
  const pt = Object.fromEntries(ENGINES.map((e) => [e, results[e][0].promptTokens]));
  if (pt.ours !== pt.wllama) problems.push(`prompt token counts differ: ours ${pt.ours}, wllama ${pt.wllama}`);
  for (const engine of ENGINES) {
    if (results[engine].some((r) => r.text !== results[engine][0].text)) {
      problems.push(`${engine}: the text differs between runs (greedy should be deterministic)`);
    }
  }
  const a = results.ours[0].text;
  const b = results.wllama[0].text;
  const same = commonPrefix(a, b);
  console.log('');
  console.log(`prompt tokens: ours ${pt.ours}, wllama ${pt.wllama}`);
  console.log(`ours:   ${JSON.stringify(a)}`);
  console.log(`wllama: ${JSON.stringify(b)}`);
  console.log(a === b ? 'texts: identical' : `texts: agree on the first ${same} of ${Math.max(a.length, b.length)} characters`);
  if (same < Math.min(20, a.length, b.length)) problems.push(`the texts differ within the first 20 characters (agree on ${same})`);
  for (const p of problems) console.log(`WARNING: ${p}`);
}

main().catch((e) => {
  console.error(`error: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
