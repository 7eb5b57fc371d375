// Browser tests of the npm package (packages/wasm-chord), installed from its packed tarball into a
// temporary project (scripts/e2e.sh does that and serves the project): the OpenAI-style API in
// headless Chromium on the 4-layer test model, on the CPU engine.
//
// env: BASE_URL (the served project: index.html imports /node_modules/wasm-chord/index.js),
//      MODEL (the 4-layer model's file, also served at /models/smollm2-4layer-mixed.gguf),
//      CHROMIUM, ONLY (a regular expression of test names to run)
import { chromium } from 'playwright-core';
import Ajv from 'ajv';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE_URL = process.env.BASE_URL || 'http://127.0.0.1:8092/';
const MODEL_URL = '/models/smollm2-4layer-mixed.gguf';
const ONLY = process.env.ONLY ? new RegExp(process.env.ONLY) : null;
const SHOTS = process.env.SCREENSHOTS || path.join(here, 'screenshots');
fs.mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const results = [];
const logs = [];

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function test(name, fn) {
  if (ONLY && !ONLY.test(name)) return;
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    for (const l of logs.slice(-20)) console.log(l);
  }
}

const context = await browser.newContext();
const page = await context.newPage();
page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
await page.goto(BASE_URL);
await page.waitForFunction(() => window.wasmChord, null, { timeout: 30_000 });

// One engine for most tests (window.engine), loaded from a URL on the CPU engine.
const ask = (messages, extra = {}) => ({ messages, temperature: 0, max_tokens: 8, ...extra });

try {
  await test('1. createEngine from a URL: progress, model info, and a non-streaming completion', async () => {
    const r = await page.evaluate(async ({ url, req }) => {
      const progress = [];
      window.engine = await window.wasmChord.createEngine({
        model: url, backend: 'cpu', onProgress: (p) => progress.push(p.loaded),
      });
      const reply = await window.engine.chat.completions.create(req);
      return { progress, model: window.engine.model, backend: window.engine.backend, source: window.engine.source, reply };
    }, { url: MODEL_URL, req: ask([{ role: 'user', content: 'Hello there!' }]) });
    console.log(`     model ${JSON.stringify(r.model)} on ${r.backend.kind}; ${r.progress.length} progress events`);
    console.log(`     reply ${JSON.stringify(r.reply.choices[0])} usage ${JSON.stringify(r.reply.usage)}`);
    assert(r.model.name === 'smollm2-4layer-mixed.gguf' && r.model.architecture === 'llama', `model: ${JSON.stringify(r.model)}`);
    assert(r.backend.kind === 'cpu', `backend: ${JSON.stringify(r.backend)}`);
    assert(r.progress.length > 0, 'no progress events');
    assert(r.source === 'network', `first load from ${r.source}`);
    const c = r.reply;
    assert(c.object === 'chat.completion' && /^chatcmpl-/.test(c.id) && typeof c.created === 'number', `shape: ${JSON.stringify(c)}`);
    assert(c.choices.length === 1 && c.choices[0].message.role === 'assistant' && typeof c.choices[0].message.content === 'string', 'choices');
    assert(['stop', 'length'].includes(c.choices[0].finish_reason), `finish_reason ${c.choices[0].finish_reason}`);
    assert(c.usage.completion_tokens > 0 && c.usage.completion_tokens <= 8 &&
      c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens, `usage: ${JSON.stringify(c.usage)}`);
  });

  await test('2. streaming gives the same greedy text; the next turn of the conversation reuses the cache', async () => {
    const r = await page.evaluate(async (req) => {
      const plain = await window.engine.chat.completions.create(req);
      const chunks = [];
      for await (const chunk of await window.engine.chat.completions.create({ ...req, stream: true })) chunks.push(chunk);
      const answer = plain.choices[0].message.content;
      const next = await window.engine.chat.completions.create({
        ...req,
        messages: [...req.messages, { role: 'assistant', content: answer }, { role: 'user', content: 'And then?' }],
      });
      return { plain, chunks, next };
    }, ask([{ role: 'user', content: 'Tell me about the sea.' }], { max_tokens: 12 }));
    const text = r.chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    const last = r.chunks[r.chunks.length - 1];
    console.log(`     ${r.chunks.length} chunks; streamed ${JSON.stringify(text)}; next turn usage ${JSON.stringify(r.next.usage)}`);
    assert(r.chunks[0].object === 'chat.completion.chunk' && r.chunks[0].choices[0].delta.role === 'assistant', 'first chunk');
    assert(r.chunks.slice(1, -1).every((c) => c.choices[0].finish_reason === null), 'finish_reason before the end');
    assert(last.choices[0].finish_reason && last.usage && last.usage.completion_tokens === r.plain.usage.completion_tokens, `last chunk: ${JSON.stringify(last)}`);
    assert(text === r.plain.choices[0].message.content, `stream ${JSON.stringify(text)} != ${JSON.stringify(r.plain.choices[0].message.content)}`);
    const u = r.next.usage;
    assert(u.prompt_tokens_details.cached_tokens >= r.plain.usage.prompt_tokens - 1 &&
      u.timings.prompt_evaluated < u.prompt_tokens - r.plain.usage.prompt_tokens + 16,
      `the follow-up did not reuse the cache: ${JSON.stringify(u)} (first prompt ${r.plain.usage.prompt_tokens})`);
  });

  await test('3. abort mid-stream: AbortError, and the engine answers the next request', async () => {
    const r = await page.evaluate(async (req) => {
      const ctrl = new AbortController();
      let n = 0;
      let error = null;
      try {
        for await (const chunk of await window.engine.chat.completions.create({ ...req, stream: true, signal: ctrl.signal })) {
          if (chunk.choices[0].delta.content) n++;
          if (n === 2) ctrl.abort();
        }
      } catch (e) {
        error = e.name;
      }
      const after = await window.engine.chat.completions.create({ ...req, max_tokens: 4 });
      return { n, error, after: after.usage.completion_tokens };
    }, ask([{ role: 'user', content: 'Count to one hundred.' }], { max_tokens: 200 }));
    console.log(`     aborted after ${r.n} chunks: ${r.error}; next request: ${r.after} tokens`);
    assert(r.error === 'AbortError' && r.n >= 2 && r.n < 20, `abort: ${JSON.stringify(r)}`);
    assert(r.after > 0, 'no answer after the abort');
  });

  await test('4. unknown options and bad input are clear errors', async () => {
    const r = await page.evaluate(async () => {
      const msg = async (f) => { try { await f(); return 'no error'; } catch (e) { return `${e.name}: ${e.message}`; } };
      const e = window.engine;
      const m = [{ role: 'user', content: 'hi' }];
      return [
        await msg(() => e.chat.completions.create({ messages: m, temprature: 0 })),
        await msg(() => window.wasmChord.createEngine({ model: '/models/x.gguf', bakend: 'cpu' })),
        await msg(() => e.chat.completions.create({ messages: m, temperature: 7 })),
        await msg(() => e.chat.completions.create({ messages: [{ role: 'robot', content: 'x' }] })),
        await msg(() => e.chat.completions.create({ messages: m, tool_choice: 'auto' })),
        await msg(() => window.wasmChord.createEngine({ model: '/models/no-such-model.gguf', backend: 'cpu' })),
        await msg(() => window.wasmChord.createEngine({ model: new Blob(['not a model at all, just text'.repeat(100)]), backend: 'cpu' })),
        await msg(() => e.detokenize([1e9])),
      ];
    });
    for (const l of r) console.log(`     ${l}`);
    assert(/TypeError: .*unknown option "temprature"/.test(r[0]), r[0]);
    assert(/TypeError: .*unknown option "bakend"/.test(r[1]), r[1]);
    assert(/temperature must be a number from 0 to 2/.test(r[2]), r[2]);
    assert(/role must be one of/.test(r[3]), r[3]);
    assert(/tool_choice without tools/.test(r[4]), r[4]);
    assert(/HTTP 404/.test(r[5]), r[5]);
    assert(/not a GGUF file/.test(r[6]), r[6]);
    assert(/out of range/.test(r[7]), r[7]);
  });

  await test('5. structured output: json_schema replies parse and validate (ajv), greedy and sampled', async () => {
    const schemas = [
      { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer' } }, required: ['name', 'age'] },
      { type: 'object', properties: { tags: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, maxItems: 3 }, ok: { type: 'boolean' } }, required: ['tags', 'ok'] },
      { type: 'object', properties: { point: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'] } }, required: ['point'] },
    ];
    const ajv = new Ajv();
    let n = 0;
    for (const [i, schema] of schemas.entries()) {
      for (const temperature of [0, 0.9]) {
        const out = await page.evaluate(async ({ schema, temperature, seed }) => {
          const r = await window.engine.chat.completions.create({
            messages: [{ role: 'user', content: 'Reply with JSON.' }], temperature, seed, max_tokens: 120,
            response_format: { type: 'json_schema', json_schema: { name: 's', schema } },
          });
          return { text: r.choices[0].message.content, finish: r.choices[0].finish_reason };
        }, { schema, temperature, seed: 7 + i });
        let value;
        try { value = JSON.parse(out.text); } catch (e) { throw new Error(`schema ${i} t=${temperature}: not JSON: ${out.text}`); }
        assert(ajv.validate(schema, value), `schema ${i} t=${temperature}: ${out.text}: ${ajv.errorsText()}`);
        assert(out.finish === 'stop', `schema ${i}: finish ${out.finish}`);
        n++;
        if (i === 0) console.log(`     t=${temperature}: ${out.text}`);
      }
    }
    // json_object: any object (cut by max_tokens, it is a prefix of one: finish_reason says so);
    // a GBNF grammar of our own.
    const other = await page.evaluate(async () => {
      const e = window.engine;
      const obj = await e.chat.completions.create({
        messages: [{ role: 'user', content: 'JSON please' }], temperature: 0, max_tokens: 200, response_format: { type: 'json_object' },
      });
      const g = await e.chat.completions.create({
        messages: [{ role: 'user', content: 'Yes or no?' }], temperature: 0.9, seed: 3, max_tokens: 20,
        grammar: 'root ::= "{" ws "\\"answer\\"" ws ":" ws ("\\"yes\\"" | "\\"no\\"") ws "}"\nws ::= [ ]?',
      });
      return { obj: obj.choices[0].message.content, objFinish: obj.choices[0].finish_reason, g: g.choices[0].message.content };
    });
    console.log(`     json_object (${other.objFinish}): ${other.obj}`);
    console.log(`     GBNF: ${other.g}`);
    assert(other.obj.trimStart().startsWith('{'), `json_object: ${other.obj}`);
    if (other.objFinish === 'stop') assert(typeof JSON.parse(other.obj) === 'object', `json_object: ${other.obj}`);
    assert(['yes', 'no'].includes(JSON.parse(other.g).answer), `grammar: ${other.g}`);
    console.log(`     ${n} schema replies valid`);
  });

  await test('5b. structured output on SmolLM2 135M: the 20 schemas of the native test × greedy and sampled all validate (ajv)', async () => {
    // The schemas and prompts of inference/tests/structured.rs (tests/data/structured/schemas.json).
    const cases = JSON.parse(fs.readFileSync(path.join(here, '../../inference/tests/data/structured/schemas.json'), 'utf8'));
    const ajv = new Ajv({ strict: false });
    const t0 = Date.now();
    const r = await page.evaluate(async (cases) => {
      const e = await window.wasmChord.createEngine({ model: '/models/SmolLM2-135M-Instruct.Q4_1.gguf', backend: 'cpu', cache: 'none' });
      const out = [];
      for (const [i, { what, schema }] of cases.entries()) {
        const messages = [{ role: 'system', content: 'You answer with JSON only.' },
          { role: 'user', content: `Give me ${what} as JSON matching this schema: ${JSON.stringify(schema)}` }];
        for (const temperature of [0, 0.8]) {
          const c = await e.chat.completions.create({ messages, temperature, seed: i + 1, max_tokens: 200,
            response_format: { type: 'json_schema', json_schema: { name: `s${i}`, schema } } });
          out.push({ i, temperature, text: c.choices[0].message.content, finish: c.choices[0].finish_reason, tokens: c.usage.completion_tokens });
        }
      }
      await e.unload();
      return out;
    }, cases);
    const bad = [];
    for (const o of r) {
      let value;
      try { value = JSON.parse(o.text); } catch { bad.push(`schema ${o.i} t=${o.temperature}: not JSON (${o.finish}): ${o.text}`); continue; }
      if (!ajv.validate(cases[o.i].schema, value)) bad.push(`schema ${o.i} t=${o.temperature}: ${ajv.errorsText()}: ${o.text}`);
      else if (o.finish !== 'stop') bad.push(`schema ${o.i} t=${o.temperature}: finish ${o.finish}`);
    }
    const tokens = r.reduce((n, o) => n + o.tokens, 0);
    console.log(`     ${r.length - bad.length}/${r.length} replies valid, ${tokens} tokens in ${((Date.now() - t0) / 1000).toFixed(0)} s; e.g. ${r[0].text.replace(/\s+/g, ' ')}`);
    assert(r.length === 40 && bad.length === 0, `invalid replies:\n${bad.join('\n')}`);
  });

  await test('6. a Blob model, raw completions, stop strings, tokenize/detokenize, unload', async () => {
    const r = await page.evaluate(async (url) => {
      const blob = await (await fetch(url)).blob();
      const e = await window.wasmChord.createEngine({ model: blob, backend: 'cpu' });
      const ids = await e.tokenize('Hello world');
      const text = await e.detokenize(ids);
      const c = await e.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 6 });
      const full = c.choices[0].text;
      // A stop string cuts the same greedy text where it first appears.
      const cut = full.length > 2 ? full.slice(1, 3) : null;
      const s = cut ? await e.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 6, stop: [cut] }) : null;
      await e.unload();
      let after;
      try { await e.tokenize('x'); after = 'no error'; } catch (err) { after = err.code; }
      return { name: e.model.name, ids, text, full, cut, stopped: s && s.choices[0].text, object: c.object, after };
    }, MODEL_URL);
    console.log(`     ${JSON.stringify(r)}`);
    assert(r.name === 'model.gguf', `a Blob without a name: ${r.name}`);
    assert(r.ids.length >= 2 && r.text === 'Hello world', `tokenize round trip: ${JSON.stringify(r)}`);
    assert(r.object === 'text_completion' && r.full.length > 0, 'raw completion');
    if (r.cut) assert(r.stopped === r.full.slice(0, r.full.indexOf(r.cut)), `stop string: ${JSON.stringify(r)}`);
    assert(r.after === 'engine_stopped', `after unload: ${r.after}`);
  });
  await test('7. the model is kept in IndexedDB (the app\'s store): a second engine loads it without the network', async () => {
    const requests = [];
    const onRequest = (r) => { if (r.url().includes('/models/')) requests.push(r.url()); };
    page.on('request', onRequest);
    const r = await page.evaluate(async (url) => {
      const e = await window.wasmChord.createEngine({ model: url, backend: 'cpu' });
      const reply = await e.chat.completions.create({ messages: [{ role: 'user', content: 'Hello there!' }], temperature: 0, max_tokens: 8 });
      await e.unload();
      const entries = await new Promise((resolve, reject) => {
        const req = indexedDB.open('wasm-chord');
        req.onerror = () => reject(req.error);
        req.onsuccess = () => {
          const all = req.result.transaction('models').objectStore('models').getAll();
          all.onsuccess = () => { req.result.close(); resolve(all.result.map((m) => ({ id: m.id, complete: m.complete, chunks: m.chunks, size: m.size }))); };
        };
      });
      const none = await window.wasmChord.createEngine({ model: url, backend: 'cpu', cache: 'none' });
      const noneSource = none.source;
      await none.unload();
      return { source: e.source, text: reply.choices[0].message.content, entries, noneSource };
    }, MODEL_URL);
    page.off('request', onRequest);
    console.log(`     second engine from ${r.source}; cache: ${JSON.stringify(r.entries)}; requests for model bytes: ${requests.length}`);
    assert(r.source === 'cache', `not loaded from the cache: ${r.source}`);
    assert(r.entries.length === 1 && r.entries[0].complete && r.entries[0].id.endsWith(MODEL_URL), `entries: ${JSON.stringify(r.entries)}`);
    assert(requests.length === 1 && r.noneSource === 'network', `cache: 'indexeddb' fetched again, or 'none' did not: ${requests.join(', ')}`);
    assert(r.text.length > 0, 'no reply from the cached model');
  });
  await test('9. a split model by its first part\'s URL: the same model as the whole file, and kept in IndexedDB', async () => {
    const r = await page.evaluate(async () => {
      const ask = { messages: [{ role: 'user', content: 'Hello' }], temperature: 0, max_tokens: 12 };
      const whole = await window.wasmChord.createEngine({ model: '/models/smollm2-4layer-mixed.gguf', backend: 'cpu', cache: 'none' });
      const want = (await whole.chat.completions.create(ask)).choices[0].message.content;
      await whole.unload();
      const url = '/models/split/smollm2-4layer-mixed-00001-of-00003.gguf';
      const first = await window.wasmChord.createEngine({ model: url, backend: 'cpu' });
      const got = (await first.chat.completions.create(ask)).choices[0].message.content;
      const source1 = first.source;
      await first.unload();
      const again = await window.wasmChord.createEngine({ model: url, backend: 'cpu' });
      const source2 = again.source;
      const got2 = (await again.chat.completions.create(ask)).choices[0].message.content;
      await again.unload();
      return { want, got, got2, source1, source2 };
    });
    console.log(`     whole file: ${JSON.stringify(r.want)}; split: ${JSON.stringify(r.got)} (${r.source1}, then ${r.source2})`);
    assert(r.got === r.want && r.got2 === r.want, `the split model answers differently: ${JSON.stringify(r)}`);
    assert(r.source1 === 'network' && r.source2 === 'cache', `sources: ${r.source1}, ${r.source2}`);
  });

  await test('8. tool calls: tools rendered by the template, the reply parsed into tool_calls, the result sent back', async () => {
    const r = await page.evaluate(async () => {
      const e = await window.wasmChord.createEngine({ model: '/hermes.gguf', backend: 'cpu', cache: 'none' });
      const tools = [
        { type: 'function', function: { name: 'get_weather', description: 'The weather in a city',
          parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['C', 'F'] } }, required: ['city'] } } },
        { type: 'function', function: { name: 'add', description: 'Add two numbers',
          parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } } },
      ];
      const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
      // The 4-layer test model writes gibberish: a grammar makes it write the call a real model would.
      const grammar = 'root ::= "<tool_call>\\n{\\"name\\": \\"get_weather\\", \\"arguments\\": {\\"city\\": \\"Paris\\"}}\\n</tool_call>"';
      const plain = await e.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
      const call = await e.chat.completions.create({ messages, tools, temperature: 0, max_tokens: 120, grammar });
      const chunks = [];
      for await (const c of await e.chat.completions.create({ messages, tools, temperature: 0, max_tokens: 120, grammar, stream: true })) chunks.push(c);
      const next = await e.chat.completions.create({
        messages: [...messages, call.choices[0].message,
          { role: 'tool', tool_call_id: call.choices[0].message.tool_calls[0].id, name: 'get_weather', content: '{"temperature": 18}' }],
        tools, temperature: 0, max_tokens: 4,
      });
      const none = await e.chat.completions.create({ messages, tools, tool_choice: 'none', temperature: 0, max_tokens: 4 });
      // tool_choice "required" / a named tool: the engine's grammar makes even this model call.
      const named = await e.chat.completions.create({ messages, tools, tool_choice: { type: 'function', function: { name: 'add' } }, temperature: 0, max_tokens: 150 });
      // (This model writes gibberish: bound the city's length, or a sampled string may run on.)
      const bounded = JSON.parse(JSON.stringify(tools));
      bounded[0].function.parameters.properties.city.maxLength = 16;
      const required = await e.chat.completions.create({ messages, tools: bounded, tool_choice: 'required', temperature: 0.7, seed: 3, max_tokens: 200 });
      let unknown;
      try { await e.chat.completions.create({ messages, tools, tool_choice: { type: 'function', function: { name: 'nope' } } }); unknown = 'no error'; } catch (err) { unknown = err.message; }
      await e.unload();
      return { plain: plain.usage.prompt_tokens, call, chunks, next: next.usage, none: none.usage.prompt_tokens, named, required, unknown };
    });
    const c = r.call.choices[0];
    console.log(`     prompt ${r.plain} tokens without tools, ${r.call.usage.prompt_tokens} with; reply ${JSON.stringify(c.message)} (${c.finish_reason})`);
    assert(r.call.usage.prompt_tokens > r.plain + 40, 'the tools were not rendered into the prompt');
    assert(r.none === r.plain, `tool_choice "none" still rendered the tools (${r.none} vs ${r.plain})`);
    assert(c.finish_reason === 'tool_calls' && c.message.content === null && c.message.tool_calls.length === 1, `not a tool call: ${JSON.stringify(c)}`);
    const tc = c.message.tool_calls[0];
    assert(tc.type === 'function' && tc.function.name === 'get_weather' && typeof tc.id === 'string' &&
      JSON.parse(tc.function.arguments).city === 'Paris', `tool call: ${JSON.stringify(tc)}`);
    // Streamed as OpenAI does: the call's id and name first, then its arguments in pieces.
    const streamed = r.chunks.flatMap((k) => k.choices[0].delta.tool_calls ?? []);
    const streamedArgs = streamed.slice(1).map((d) => d.function.arguments).join('');
    console.log(`     streamed: ${streamed.length} tool_calls deltas, arguments ${JSON.stringify(streamedArgs)}`);
    assert(streamed.length > 2 && streamed[0].function.name === 'get_weather' && streamed[0].id === tc.id &&
      streamed.every((d) => d.index === 0) && JSON.parse(streamedArgs).city === 'Paris' &&
      r.chunks[r.chunks.length - 1].choices[0].finish_reason === 'tool_calls', `streamed: ${JSON.stringify(r.chunks)}`);
    console.log(`     the tool's result went back: prompt ${r.next.prompt_tokens} tokens, ${r.next.prompt_tokens_details.cached_tokens} from the cache`);
    assert(r.next.prompt_tokens > r.call.usage.prompt_tokens, 'the tool call and result were not rendered');
    const n = r.named.choices[0];
    console.log(`     tool_choice add: ${JSON.stringify(n.message.tool_calls)}; required: ${JSON.stringify(r.required.choices[0].message.tool_calls)}`);
    assert(n.finish_reason === 'tool_calls' && n.message.tool_calls.length === 1 && n.message.tool_calls[0].function.name === 'add', `named: ${JSON.stringify(n)}`);
    const args = JSON.parse(n.message.tool_calls[0].function.arguments);
    assert(typeof args.a === 'number' && typeof args.b === 'number', `add's arguments: ${JSON.stringify(args)}`);
    const q = r.required.choices[0];
    assert(q.finish_reason === 'tool_calls' && q.message.tool_calls.length >= 1 &&
      q.message.tool_calls.every((t) => ['get_weather', 'add'].includes(t.function.name) && typeof JSON.parse(t.function.arguments) === 'object'), `required: ${JSON.stringify(q)}`);
    assert(/not among the tools/.test(r.unknown), r.unknown);
  });

  await test('10. threads: the threaded engine on this cross-origin isolated page; threads: 1 gives the same bits', async () => {
    const r = await page.evaluate(async ({ url, req }) => {
      const auto = window.engine.threads;
      const one = await window.wasmChord.createEngine({ model: url, backend: 'cpu', threads: 1 });
      const a = await window.engine.chat.completions.create(req);
      const b = await one.chat.completions.create(req);
      const oneThreads = one.threads;
      await one.unload();
      const bad = [];
      for (const threads of [0, 1.5, 'many', 65]) {
        try {
          await window.wasmChord.createEngine({ model: url, threads });
          bad.push(`threads ${JSON.stringify(threads)} accepted`);
        } catch (e) {
          bad.push(e instanceof TypeError ? 'TypeError' : `${e.name}: ${e.message}`);
        }
      }
      return { auto, oneThreads, a: a.choices[0].message.content, b: b.choices[0].message.content,
        isolated: self.crossOriginIsolated, cores: navigator.hardwareConcurrency, bad };
    }, { url: MODEL_URL, req: ask([{ role: 'user', content: 'Count from one to ten.' }], { max_tokens: 16 }) });
    console.log(`     cross-origin isolated ${r.isolated}, ${r.cores} cores: threads ${JSON.stringify(r.auto)}; threads: 1 → ${JSON.stringify(r.oneThreads)}`);
    console.log(`     ${r.auto.count} threads: ${JSON.stringify(r.a)}; 1 thread: ${JSON.stringify(r.b)}`);
    assert(r.isolated, 'the test page is not cross-origin isolated (scripts/serve.py sends COOP/COEP)');
    const want = Math.min(r.cores, 8);
    assert(want > 1 ? r.auto.count === want && r.auto.reason === null : r.auto.count === 1 && /one CPU core/.test(r.auto.reason),
      `automatic threads: ${JSON.stringify(r.auto)} on ${r.cores} cores`);
    assert(r.oneThreads.count === 1 && /as asked/.test(r.oneThreads.reason), `threads: 1 → ${JSON.stringify(r.oneThreads)}`);
    assert(r.a.length > 0 && r.a === r.b, 'the threaded and the single-threaded engine differ');
    assert(r.bad.every((x) => x === 'TypeError'), `bad thread counts: ${r.bad.join('; ')}`);
  });
} finally {
  await page.screenshot({ path: path.join(SHOTS, 'npm-package.png') }).catch(() => {});
  await browser.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
