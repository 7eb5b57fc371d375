// Benchmark (not a test): peak memory of the page and its engine worker while a model is
// downloaded into IndexedDB and loaded onto WebGPU, in headless Chromium (SwiftShader WebGPU).
// Sampled every 250 ms: the resident memory (VmRSS, Linux /proc) of Chromium's renderer processes
// (the page, its engine worker and its wasm memory) and of the GPU process (where SwiftShader keeps
// "GPU" buffers), plus the page's own JS heap from the DevTools protocol.
//
// usage: node tests/e2e/load-memory.bench.mjs            (serve first: see BENCHMARKS.md)
// env: BASE_URL (default http://127.0.0.1:8094/), MODEL_URL (default the Qwen2.5 1.5B file in
//      models/), ENGINE (webgpu | cpu | auto, default webgpu), CHROMIUM
import { chromium } from 'playwright-core';
import fs from 'node:fs';

/// Sum of VmRSS (bytes) of this machine's Chromium processes whose command line has `--type=KIND`.
function rssOf(kind) {
  let total = 0;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chrom') || !cmd.includes(`--type=${kind}`)) continue;
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch { /* the process ended */ }
  }
  return total;
}

const BASE_URL = process.env.BASE_URL || 'http://127.0.0.1:8094/';
const MODEL_URL = process.env.MODEL_URL || '/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf';
const ENGINE = process.env.ENGINE || 'webgpu';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
});
let code = 0;
try {
  const page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(BASE_URL);
  await page.waitForSelector('#model-status');
  const isolated = await page.evaluate(() => self.crossOriginIsolated);
  if (!isolated) throw new Error('the page is not cross-origin isolated (serve it with scripts/serve.py)');
  await page.click('details.settings summary');
  await page.selectOption('select[name=backend]', ENGINE);

  const base = { renderer: rssOf('renderer'), gpu: rssOf('gpu-process') };
  let peakRenderer = 0;
  let peakGpu = 0;
  let peakPageHeap = 0;
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const metrics = await cdp.send('Performance.getMetrics').catch(() => ({ metrics: [] }));
      const heap = (metrics.metrics.find((m) => m.name === 'JSHeapUsedSize') || {}).value || 0;
      peakRenderer = Math.max(peakRenderer, rssOf('renderer'));
      peakGpu = Math.max(peakGpu, rssOf('gpu-process'));
      peakPageHeap = Math.max(peakPageHeap, heap);
      samples++;
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  const t0 = Date.now();
  await page.fill('#model-url', MODEL_URL);
  await page.click('.url-form button[type=submit]');
  await page.locator('#model-status[data-state=ready], #model-status[data-state=failed]').waitFor({ timeout: 900_000 });
  const secs = (Date.now() - t0) / 1000;
  sampling = false;
  await sampler;
  const status = (await page.innerText('#model-status')).trim().replace(/\s+/g, ' ');
  const backend = (await page.innerText('#backend')).trim().replace(/\s+/g, ' ');
  const size = (await page.evaluate(async (u) => (await fetch(u, { method: 'HEAD' })).headers.get('content-length'), MODEL_URL));
  const mb = (b) => `${(b / 1e6).toFixed(0)} MB`;
  console.log(`model:     ${MODEL_URL} (${mb(Number(size))})`);
  console.log(`status:    ${status}`);
  console.log(`engine:    ${backend}`);
  console.log(`download + cache + load: ${secs.toFixed(1)} s`);
  console.log(`peak RSS of the renderer processes (page + engine worker + wasm memory): ${mb(peakRenderer)} (${mb(base.renderer)} before the load; ${samples} samples)`);
  console.log(`peak RSS of the GPU process (SwiftShader keeps GPU buffers in host memory): ${mb(peakGpu)} (${mb(base.gpu)} before)`);
  console.log(`peak JS heap of the page (UI thread, CDP JSHeapUsedSize): ${mb(peakPageHeap)}`);
  if (!status.includes('context')) code = 1;
} catch (e) {
  console.error(`error: ${e.message}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
