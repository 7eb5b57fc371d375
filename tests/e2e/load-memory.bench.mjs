// Benchmark (not a test): peak memory of the page and its engine worker while a model is
// downloaded into IndexedDB and loaded onto WebGPU, in headless Chromium (SwiftShader WebGPU).
// Memory comes from performance.measureUserAgentSpecificMemory() (page + workers, JS heap and
// wasm memory; available because scripts/serve.py makes the page cross-origin isolated), sampled
// every 250 ms, plus the page's own JS heap from the DevTools protocol.
//
// usage: node tests/e2e/load-memory.bench.mjs            (serve first: see BENCHMARKS.md)
// env: BASE_URL (default http://127.0.0.1:8094/), MODEL_URL (default the Qwen2.5 1.5B file in
//      models/), ENGINE (webgpu | cpu | auto, default webgpu), CHROMIUM
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL || 'http://127.0.0.1:8094/';
const MODEL_URL = process.env.MODEL_URL || '/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf';
const ENGINE = process.env.ENGINE || 'webgpu';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    '--enable-blink-features=MeasureMemory'],
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

  let peakAll = 0;
  let peakPageHeap = 0;
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const all = await page.evaluate(async () => (await performance.measureUserAgentSpecificMemory()).bytes)
        .catch(() => 0);
      const metrics = await cdp.send('Performance.getMetrics').catch(() => ({ metrics: [] }));
      const heap = (metrics.metrics.find((m) => m.name === 'JSHeapUsedSize') || {}).value || 0;
      peakAll = Math.max(peakAll, all);
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
  console.log(`peak memory, page + worker (measureUserAgentSpecificMemory): ${mb(peakAll)} over ${samples} samples`);
  console.log(`peak JS heap of the page (UI thread, CDP JSHeapUsedSize): ${mb(peakPageHeap)}`);
  if (!status.includes('context')) code = 1;
} catch (e) {
  console.error(`error: ${e.message}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
