// Page-level check of the threaded CPU engine in the app (not part of scripts/test.sh): an isolated
// page must say "CPU · N threads" and reply; a page whose COOP/COEP headers are stripped must run
// one thread, say why, and reply. Serve a dist/ that has the threaded worker
// (scripts/build-worker-mt.sh) with scripts/serve.py --dir dist --models models --port P, then:
//   BASE_URL=http://127.0.0.1:P/ node tests/bench/threads-check.mjs
import { chromium } from 'playwright-core';
const BASE = process.env.BASE_URL;
const MODEL = process.env.MODEL_URL || '/models/smollm2-4layer-mixed.gguf';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
let failed = false;
async function run(label, strip) {
  const context = await browser.newContext({ serviceWorkers: 'block' });
  if (strip) {
    await context.route('**/*', async (route) => {
      const resp = await route.fetch();
      const headers = { ...resp.headers() };
      delete headers['cross-origin-opener-policy'];
      delete headers['cross-origin-embedder-policy'];
      await route.fulfill({ response: resp, headers });
    });
  }
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  page.on('worker', (w) => logs.push(`[worker] ${w.url()}`));
  try {
    await page.goto(new URL('./', BASE).href);
    const iso = await page.evaluate(() => self.crossOriginIsolated);
    await page.click('details.settings summary');
    await page.selectOption('select[name=backend]', 'cpu');
    await page.click('details.settings summary');
    await page.fill('#model-url', MODEL);
    await page.click('.url-form button[type=submit]');
    await page.locator('#model-status[data-state=ready], #model-status[data-state=failed]').waitFor({ timeout: 180_000 });
    const status = (await page.innerText('#model-status')).trim().replace(/\s+/g, ' ');
    const badge = (await page.innerText('#backend .badge')).trim();
    await page.waitForTimeout(500);
    const threads = (await page.innerText('#backend .threads')).trim();
    console.log(`${label}: isolated=${iso} status="${status.slice(0, 80)}" badge="${badge}" threads="${threads}"`);
    await page.fill('.composer textarea', 'What is the capital of France?');
    const t0 = Date.now();
    await page.press('.composer textarea', 'Enter');
    await page.waitForFunction(() => { const a = document.querySelector('article.msg-assistant'); return a && a.dataset.stop; }, null, { timeout: 180_000 });
    const reply = (await page.innerText('article.msg-assistant')).trim().replace(/\s+/g, ' ');
    console.log(`${label}: reply in ${Date.now() - t0} ms: ${reply.slice(0, 160)}`);
  } catch (e) {
    failed = true;
    console.log(`${label}: FAILED ${e.message}`);
  }
  console.log(logs.filter((l) => !/^\[(debug|log|info)\]/.test(l)).slice(-20).map((l) => `   ${l}`).join('\n'));
  await context.close();
}
await run('isolated', false);
await run('not-isolated', true);
await browser.close();
process.exit(failed ? 1 : 0);
