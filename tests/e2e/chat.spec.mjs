// End-to-end test of the built app in headless Chromium (the system /usr/bin/chromium, driven by
// playwright-core; no browser download). scripts/e2e.sh builds, serves and runs this.
//
//   1. a corrupt / non-GGUF file dropped on the page gives a clear error, fast (header check);
//   2. the 4-layer SmolLM2 test model, picked as a local file, loads in the worker and generates
//      greedy tokens on the CPU engine that agree with llama.cpp's golden tokens under the
//      teacher-forcing rule (../shared/golden/README.md): while our tokens equal the golden ones
//      the context is identical, so every position whose golden margin is >= 1.0 must match; the
//      first mismatch is allowed only at a near-tie (margin < 1.0), after which contexts differ.
//
// env: BASE_URL (default http://127.0.0.1:8091/), MODEL (path of smollm2-4layer-mixed.gguf),
//      GOLDEN (its golden json), CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (default ./screenshots)
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE_URL = process.env.BASE_URL || 'http://127.0.0.1:8091/';
const MODEL = process.env.MODEL || path.resolve(here, '../../../shared/models/smollm2-4layer-mixed.gguf');
const GOLDEN = process.env.GOLDEN || path.resolve(here, '../../../shared/golden/smollm2-4layer-mixed.json');
const SHOTS = process.env.SCREENSHOTS || path.join(here, 'screenshots');
const MARGIN = 1.0;

fs.mkdirSync(SHOTS, { recursive: true });

const results = [];
async function test(name, fn, page) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  } finally {
    const file = path.join(SHOTS, `${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.log(`     screenshot: ${file}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/// The teacher-forcing comparison; returns a one-line description or throws.
export function compareGreedy(ours, golden) {
  const want = golden.greedy.tokens;
  const margin = golden.greedy.top1_minus_top2;
  assert(ours.length > 0, 'no tokens were generated');
  let checked = 0;
  for (let i = 0; i < Math.min(ours.length, want.length); i++) {
    if (ours[i] === want[i]) {
      if (margin[i] >= MARGIN) checked++;
      continue;
    }
    assert(margin[i] < MARGIN,
      `token ${i}: got ${ours[i]}, golden ${want[i]} with margin ${margin[i]} >= ${MARGIN} (ours ${ours.join(',')})`);
    return `${checked} confident positions match; diverged at near-tie position ${i} (margin ${margin[i]})`;
  }
  return `${checked} confident positions match; all ${Math.min(ours.length, want.length)} tokens equal`;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const logs = [];
page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));

try {
  await page.goto(BASE_URL);
  await page.waitForSelector('#model-status', { timeout: 60_000 });

  await test('corrupt file shows a clear error', async () => {
    const bad = path.join(os.tmpdir(), 'not-a-model.gguf');
    fs.writeFileSync(bad, 'This is a text file, not a GGUF model.\n'.repeat(200));
    await page.setInputFiles('input[type=file]', bad);
    const status = page.locator('#model-status[data-state=failed]');
    await status.waitFor({ timeout: 30_000 });
    const text = (await status.innerText()).trim();
    console.log(`     error shown: ${text}`);
    assert(/not-a-model\.gguf/.test(text) && /not a GGUF file/i.test(text), `unclear error: ${text}`);
  }, page);

  await test('4-layer model: greedy tokens match llama.cpp golden', async () => {
    const golden = JSON.parse(fs.readFileSync(GOLDEN, 'utf8')).prompts[0];
    // Settings: greedy, 32 tokens, completion mode (the golden prompt has no chat template).
    await page.click('details.settings summary');
    await page.fill('input[name=temperature]', '0');
    await page.press('input[name=temperature]', 'Tab');
    await page.fill('input[name=max_tokens]', String(golden.greedy.tokens.length));
    await page.press('input[name=max_tokens]', 'Tab');
    await page.check('input[name=raw]');
    const saved = JSON.parse(await page.evaluate(() => localStorage.getItem('wasm-chord.settings.v1')));
    assert(saved && saved.temperature === 0 && saved.raw === true && saved.max_tokens === 32,
      `settings not persisted: ${JSON.stringify(saved)}`);

    const t0 = Date.now();
    await page.setInputFiles('input[type=file]', MODEL);
    await page.locator('#model-status[data-state=ready]').waitFor({ timeout: 180_000 });
    console.log(`     loaded in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${(await page.innerText('#model-status')).trim()}`);

    await page.fill('.composer textarea', golden.text);
    await page.press('.composer textarea', 'Enter');
    const reply = page.locator('article.msg-assistant[data-stop]:not([data-stop=""])');
    await reply.waitFor({ timeout: 300_000 });
    const ids = (await reply.getAttribute('data-token-ids')).split(',').filter(Boolean).map(Number);
    const stats = (await reply.locator('.msg-stats').innerText()).trim();
    console.log(`     reply: ${JSON.stringify((await reply.locator('.msg-body').innerText()).slice(0, 80))}`);
    console.log(`     stats: ${stats}`);
    console.log(`     ids:    ${ids.join(',')}`);
    console.log(`     golden: ${golden.greedy.tokens.join(',')}`);
    const m = stats.match(/prompt (\d+) tokens/);
    assert(m && Number(m[1]) === golden.n_tokens, `prompt tokens ${m && m[1]} != golden ${golden.n_tokens}`);
    console.log(`     ${compareGreedy(ids, golden)}`);
  }, page);
} finally {
  if (results.some((r) => !r.ok)) {
    console.log('--- browser console ---');
    for (const l of logs.slice(-40)) console.log(l);
  }
  await browser.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
