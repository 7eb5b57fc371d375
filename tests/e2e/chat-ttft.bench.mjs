// Benchmark (not a test): time to first token, turn by turn, of a 10-turn chat in the app's CPU
// engine (headless Chromium, wasm, one thread), with each conversation's KV cache kept between
// replies and — in a second, fresh browser context right after — recomputing the whole
// conversation every reply (Settings → "Keep each conversation in the model's cache" off; what
// every reply cost before the conversation engine). The user messages are those of
// scripts/bench-chat.sh (scripts/chat-bench-messages.txt), greedy, 80 tokens at most per reply.
//
// usage: node tests/e2e/chat-ttft.bench.mjs         (serve first: see BENCHMARKS.md)
// env: BASE_URL (default http://127.0.0.1:8095/), MODEL_URL (default the SmolLM2 135M file in
//      models/), CHROMIUM
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE_URL = process.env.BASE_URL || 'http://127.0.0.1:8095/';
const MODEL_URL = process.env.MODEL_URL || '/models/SmolLM2-135M-Instruct.Q4_1.gguf';
const messages = fs.readFileSync(path.join(here, '../../scripts/chat-bench-messages.txt'), 'utf8')
  .split('\n').filter((l) => l.trim());

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});

async function run(reuse) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(BASE_URL);
  await page.waitForSelector('#model-status');
  await page.evaluate((reuse) => {
    const s = JSON.parse(localStorage.getItem('wasm-chord.settings.v1') || '{}');
    Object.assign(s, { temperature: 0, max_tokens: 80, backend: 'cpu', raw: false, reuse_cache: reuse,
      system_prompt: 'You are a helpful assistant.' });
    localStorage.setItem('wasm-chord.settings.v1', JSON.stringify(s));
  }, reuse);
  await page.reload();
  await page.waitForSelector('#model-status');
  await page.fill('#model-url', MODEL_URL);
  await page.click('.url-form button[type=submit]');
  await page.locator('#model-status[data-state=ready]').waitFor({ timeout: 300_000 });
  const rows = [];
  for (const [i, m] of messages.entries()) {
    await page.fill('.composer textarea', m);
    await page.press('.composer textarea', 'Enter');
    await page.waitForFunction((i) => {
      const a = document.querySelectorAll('article.msg-assistant')[i];
      return a && a.dataset.stop;
    }, i, { timeout: 600_000 });
    const a = page.locator('article.msg-assistant').nth(i);
    const [prompt, evaluated, ttft] = (await a.getAttribute('data-prompt')).split(',').map(Number);
    const ids = await a.getAttribute('data-token-ids');
    rows.push({ turn: i + 1, prompt, evaluated, ttft, ids });
  }
  await context.close();
  return rows;
}

try {
  const a = await run(true);
  const b = await run(false);
  console.log(`${MODEL_URL}, browser CPU engine (wasm, 1 thread), headless Chromium`);
  console.log('turn  prompt  evaluated   TTFT reuse   TTFT recompute   same reply');
  for (const [x, y] of a.map((x, i) => [x, b[i]])) {
    console.log(`${String(x.turn).padStart(4)}  ${String(x.prompt).padStart(6)}  ${String(x.evaluated).padStart(9)}  ` +
      `${String(x.ttft).padStart(9)} ms  ${String(y.ttft).padStart(12)} ms   ${x.ids === y.ids}`);
  }
  const r = (v) => (v[v.length - 1].ttft / v[0].ttft).toFixed(2);
  console.log(`turn 10 / turn 1 TTFT: ${r(a)}x with reuse, ${r(b)}x recomputing`);
} finally {
  await browser.close();
}
