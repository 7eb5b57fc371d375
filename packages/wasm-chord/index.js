// wasm-chord: GGUF language models in the browser with an OpenAI-style API.
//
// The engine (Rust, WebGPU or SIMD-wasm CPU) runs in a dedicated Web Worker this module starts
// itself: the same engine host as the wasm-chord web app (app/src/bin/worker), speaking the same
// messages (app/src/protocol.rs). This file only turns those messages into the OpenAI shapes.
//
//   const engine = await createEngine({ model: 'https://…/model.gguf' });
//   const r = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }] });
//   for await (const chunk of await engine.chat.completions.create({ messages, stream: true })) …

import { CHUNK_BYTES, openCache, cachedDownload, markComplete, forget } from './cache.js';

const IN_FLIGHT_BYTES = 32 << 20; // most bytes sent but not yet consumed by the worker

const ENGINE_OPTIONS = ['model', 'backend', 'onProgress', 'signal', 'contextSize', 'workerUrl', 'cache', 'threads'];
/** Most threads without an explicit count (more rarely helps a memory-bound decode): the web app's. */
const AUTO_MAX_THREADS = 8;
/** Most threads the engine accepts. */
const MAX_THREADS = 64;
const CHAT_OPTIONS = ['messages', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens',
  'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'stop', 'response_format', 'grammar', 'tools',
  'tool_choice', 'signal', 'model', 'n'];
const COMPLETION_OPTIONS = ['prompt', 'stream', 'stream_options', 'max_tokens', 'temperature', 'top_p',
  'top_k', 'min_p', 'seed', 'stop', 'response_format', 'grammar', 'signal', 'model', 'n'];
const ROLES = ['system', 'user', 'assistant', 'tool'];

/** An error from the engine or from bad input; `code` says which kind. */
export class WasmChordError extends Error {
  constructor(message, code = 'engine_error') {
    super(message);
    this.name = 'WasmChordError';
    this.code = code;
  }
}

function abortError() {
  return new DOMException('The operation was aborted.', 'AbortError');
}

function checkOptions(where, options, allowed) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${where}: expected an options object`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`${where}: unknown option "${key}" (known: ${allowed.join(', ')})`);
    }
  }
}

function number(where, name, value, min, max) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new TypeError(`${where}: ${name} must be a number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The worker and its messages (JSON text; binary messages are saved KV caches, not kept here). */
class Link {
  constructor(worker) {
    this.worker = worker;
    this.listeners = new Set();
    this.dead = null;
    worker.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'Panic') this.fail(`the engine stopped: ${msg.message}`);
      for (const fn of [...this.listeners]) fn(msg);
    };
    worker.onerror = (ev) => {
      ev.preventDefault();
      this.fail(`the engine worker failed: ${ev.message || 'unknown error'}`);
    };
  }

  fail(why) {
    if (this.dead) return;
    this.dead = new WasmChordError(`wasm-chord: ${why}. Create a new engine.`, 'engine_stopped');
    for (const fn of [...this.listeners]) fn({ type: '__dead' });
  }

  post(msg) {
    if (this.dead) throw this.dead;
    this.worker.postMessage(JSON.stringify(msg));
  }

  postBytes(buffer) {
    if (this.dead) throw this.dead;
    this.worker.postMessage(buffer, [buffer]);
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The first message for which `pick` returns something; engine errors reject. */
  wait(pick, { errors = true } = {}) {
    return new Promise((resolve, reject) => {
      if (this.dead) return reject(this.dead);
      const off = this.on((msg) => {
        if (msg.type === '__dead') {
          off();
          reject(this.dead);
        } else if (errors && (msg.type === 'Error' || msg.type === 'Rejected')) {
          off();
          reject(new WasmChordError(msg.message, msg.type === 'Rejected' ? 'bad_model' : 'engine_error'));
        } else {
          const got = pick(msg);
          if (got !== undefined) {
            off();
            resolve(got);
          }
        }
      });
    });
  }
}

/** The bytes of `model` as chunks: a URL is downloaded (streamed; with `cache: 'indexeddb'` from
 * and into the web app's IndexedDB model cache, resuming a partial download), a Blob/File sliced. */
/** The parts of a split model from its first part's URL (`…-00001-of-00003.gguf`), or null. */
function splitParts(url) {
  const m = /^(.*)-00001-of-(\d{5})\.gguf([?#].*)?$/.exec(url);
  const n = m ? Number(m[2]) : 0;
  if (n < 2) return null;
  return Array.from({ length: n }, (_, i) => `${m[1]}-${String(i + 1).padStart(5, '0')}-of-${m[2]}.gguf${m[3] ?? ''}`);
}

/** `single`: a part of a split model (not split again). */
async function openModel(model, signal, cacheMode, single = false) {
  if (typeof model === 'string' || model instanceof URL) {
    const base = typeof location !== 'undefined' ? location.href : undefined;
    const url = new URL(model, base).href;
    const urls = single ? null : splitParts(url);
    if (urls) {
      // A split model: every part opened (each cached under its own URL), then their bytes one
      // after the other; the engine reads them as one model.
      const parts = [];
      for (const u of urls) parts.push(await openModel(u, signal, cacheMode, true));
      async function* chained() {
        for (const p of parts) yield* p.chunks;
      }
      return {
        name: parts[0].name.replace(/-00001-of-\d{5}\.gguf$/, '.gguf'),
        size: parts.reduce((n, p) => n + p.size, 0),
        parts: parts.map((p) => p.size),
        source: parts.every((p) => p.source === 'cache') ? 'cache' : 'network',
        chunks: chained(),
        cache: parts[0].cache,
        keys: parts.filter((p) => p.cache).map((p) => p.key),
      };
    }
    const name = decodeURIComponent(url.split(/[?#]/)[0].split('/').pop()) || 'model.gguf';
    const failed = (e) => new WasmChordError(`wasm-chord: cannot download ${url}: ${e.message}`, 'download_failed');
    const cache = cacheMode === 'indexeddb' ? await openCache() : null;
    if (cache) {
      let got;
      try {
        got = await cachedDownload(cache, url, name, signal, streamChunks);
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw failed(e);
      }
      if (got) return { ...got, cache, key: url, keys: [url] };
    }
    let resp;
    try {
      resp = await fetch(url, { signal });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw failed(e);
    }
    if (!resp.ok) throw failed(new Error(`HTTP ${resp.status}`));
    const length = Number(resp.headers.get('content-length'));
    if (!length || !resp.body) {
      const blob = await resp.blob();
      return { name, size: blob.size, source: 'network', chunks: blobChunks(blob) };
    }
    return { name, size: length, source: 'network', chunks: streamChunks(resp.body) };
  }
  if (typeof Blob !== 'undefined' && model instanceof Blob) {
    return { name: model.name || 'model.gguf', size: model.size, source: 'file', chunks: blobChunks(model) };
  }
  throw new TypeError('createEngine: model must be a URL (string or URL), a File or a Blob');
}

async function* blobChunks(blob) {
  for (let off = 0; off < blob.size; off += CHUNK_BYTES) {
    yield new Uint8Array(await blob.slice(off, off + CHUNK_BYTES).arrayBuffer());
  }
}

/** A byte stream regrouped into CHUNK_BYTES pieces (the last one shorter). */
async function* streamChunks(body) {
  const reader = body.getReader();
  let buf = new Uint8Array(CHUNK_BYTES);
  let fill = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let off = 0;
      while (off < value.length) {
        const n = Math.min(value.length - off, CHUNK_BYTES - fill);
        buf.set(value.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === CHUNK_BYTES) {
          yield buf;
          buf = new Uint8Array(CHUNK_BYTES);
          fill = 0;
        }
      }
    }
    if (fill > 0) yield buf.subarray(0, fill);
  } finally {
    reader.releaseLock();
  }
}

/** Stream the model to the worker and wait until it is built. */
async function load(link, model, { backend, onProgress, signal, cache }) {
  const opened = await openModel(model, signal, cache);
  const { name, size, chunks, source } = opened;
  let consumed = 0;
  const off = link.on((m) => {
    if (m.type === 'Progress') {
      consumed = m.done;
      if (onProgress) onProgress({ phase: 'loading', source, loaded: m.done, total: m.total });
    }
  });
  const loaded = link.wait((m) => (m.type === 'Loaded' ? m : undefined));
  loaded.catch(() => {}); // observed below
  try {
    link.post({ type: 'LoadStart', size, name, backend, ...(opened.parts ? { parts: opened.parts } : {}) });
    let sent = 0;
    for await (const chunk of chunks) {
      if (signal && signal.aborted) throw abortError();
      while (sent - consumed > IN_FLIGHT_BYTES) {
        if (link.dead) throw link.dead;
        await sleep(5);
      }
      const copy = chunk.slice(); // its buffer is transferred (detached: length 0) to the worker
      sent += copy.length;
      link.postBytes(copy.buffer);
    }
    if (sent !== size) {
      throw new WasmChordError(`wasm-chord: ${name} ended early: ${sent} of ${size} bytes`, 'download_failed');
    }
    link.post({ type: 'LoadEnd' });
    const onAbort = new Promise((_, reject) => {
      if (signal) signal.addEventListener('abort', () => reject(abortError()), { once: true });
    });
    const info = await Promise.race([loaded, onAbort]);
    if (opened.cache) {
      for (const key of opened.keys ?? []) await markComplete(opened.cache, key).catch(() => {});
    }
    return { name, source, info };
  } catch (e) {
    if (!link.dead) link.post({ type: 'LoadCancel' });
    // Only the engine's verdict on the bytes deletes a stored copy (a network failure keeps it,
    // to resume).
    if (opened.cache && e.code === 'bad_model') {
      for (const key of opened.keys ?? []) await forget(opened.cache, key).catch(() => {});
    }
    throw e;
  } finally {
    off();
  }
}

/** OpenAI message content (a string or text parts) as text. */
function contentText(content, i) {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content.map((part) => {
      if (part && part.type === 'text' && typeof part.text === 'string') return part.text;
      throw new TypeError(`messages[${i}].content: only text parts are supported`);
    }).join('');
  }
  throw new TypeError(`messages[${i}].content must be a string or an array of text parts`);
}

function turns(messages) {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new TypeError('chat.completions.create: messages must be a non-empty array');
  }
  return messages.map((m, i) => {
    if (!m || !ROLES.includes(m.role)) {
      throw new TypeError(`messages[${i}].role must be one of ${ROLES.join(', ')}`);
    }
    const turn = { role: m.role, content: contentText(m.content, i) };
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      if (m.role !== 'assistant' || !Array.isArray(m.tool_calls)) {
        throw new TypeError(`messages[${i}].tool_calls: an array, on an assistant message`);
      }
      turn.tool_calls = m.tool_calls.map((c, j) => {
        if (!c || !c.function || typeof c.function.name !== 'string') {
          throw new TypeError(`messages[${i}].tool_calls[${j}]: expected { id, type: 'function', function: { name, arguments } }`);
        }
        const args = c.function.arguments;
        return { id: c.id ?? `call_${j}`, type: 'function', function: { name: c.function.name, arguments: typeof args === 'string' ? safeParse(args) : (args ?? {}) } };
      });
    }
    if (m.role === 'tool') {
      if (typeof m.tool_call_id !== 'string') throw new TypeError(`messages[${i}]: a tool message needs tool_call_id`);
      turn.tool_call_id = m.tool_call_id;
      if (typeof m.name === 'string') turn.name = m.name;
    }
    return turn;
  });
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** OpenAI tool calls from the worker's (arguments as JSON text, as OpenAI gives them). */
function openaiToolCalls(calls) {
  return (calls ?? []).map((c) => ({
    id: c.id,
    type: 'function',
    function: {
      name: c.function.name,
      arguments: typeof c.function.arguments === 'string' ? c.function.arguments : JSON.stringify(c.function.arguments ?? {}),
    },
  }));
}

function outputFormat(where, responseFormat, grammar) {
  if (grammar !== undefined) {
    if (typeof grammar !== 'string') throw new TypeError(`${where}: grammar must be a GBNF string`);
    if (responseFormat && responseFormat.type !== 'text') {
      throw new TypeError(`${where}: give response_format or grammar, not both`);
    }
    return { type: 'grammar', grammar };
  }
  if (!responseFormat || responseFormat.type === 'text') return undefined;
  if (responseFormat.type === 'json_object') return { type: 'json_object' };
  if (responseFormat.type === 'json_schema') {
    const schema = responseFormat.json_schema && responseFormat.json_schema.schema;
    if (!schema || typeof schema !== 'object') {
      throw new TypeError(`${where}: response_format.json_schema.schema must be a JSON Schema object`);
    }
    return { type: 'json_schema', schema };
  }
  throw new TypeError(`${where}: response_format.type must be "text", "json_object" or "json_schema"`);
}

const FINISH = { eos: 'stop', grammar: 'stop', stop: 'stop', stopped: 'stop', length: 'length', context: 'length' };

function usage(done) {
  return {
    prompt_tokens: done.prompt_tokens,
    completion_tokens: done.tokens,
    total_tokens: done.prompt_tokens + done.tokens,
    prompt_tokens_details: { cached_tokens: done.reused_tokens },
    timings: {
      prompt_evaluated: done.evaluated_tokens,
      prompt_per_second: done.prefill_tok_s,
      predicted_per_second: done.decode_tok_s,
      time_to_first_token_ms: done.ttft_ms,
    },
  };
}

let nextId = 0;
const newId = (prefix) => `${prefix}-${Date.now().toString(36)}${(nextId++).toString(36)}`;

/** One request to the worker: its tokens as an async queue, then `Done` (or an error). */
function run(link, generate, signal) {
  const queue = [];
  let wake = null;
  let finished = null;
  let failed = null;
  const push = () => { if (wake) { wake(); wake = null; } };
  const off = link.on((m) => {
    if (m.type === 'Token' || m.type === 'ToolDelta') queue.push(m);
    else if (m.type === 'Done') finished = m;
    else if (m.type === 'Error' || m.type === 'Rejected') failed = new WasmChordError(m.message);
    else if (m.type === '__dead') failed = link.dead;
    else return;
    push();
  });
  const onAbort = () => { if (!link.dead) link.post({ type: 'Stop' }); };
  if (signal) signal.addEventListener('abort', onAbort, { once: true });
  link.post(generate);
  return {
    async *events() {
      try {
        for (;;) {
          while (queue.length) yield queue.shift();
          if (failed) throw failed;
          if (finished) {
            if (signal && signal.aborted) throw abortError();
            return finished;
          }
          await new Promise((resolve) => { wake = resolve; });
        }
      } finally {
        off();
        if (signal) signal.removeEventListener('abort', onAbort);
        if (!finished && !failed && !link.dead) {
          // The caller stopped reading: stop the reply and let it finish before the next one.
          link.post({ type: 'Stop' });
          await link.wait((m) => (m.type === 'Done' ? m : undefined)).catch(() => {});
        }
      }
    },
  };
}

class Engine {
  constructor(link, info, options) {
    this._link = link;
    this._queue = Promise.resolve();
    this._contextSize = options.contextSize;
    /** The model: its name (from the URL or file), architecture, parameters, trained context. */
    this.model = { name: info.name, architecture: info.info.arch, parameters: info.info.n_params, context_length: info.info.n_ctx };
    /** Where the bytes came from: 'network', 'resumed' (a partial download finished), 'cache', 'file'. */
    this.source = info.source;
    /** Where it runs: `{ kind: 'webgpu' | 'cpu', adapter?, fallback? }`. */
    this.backend = info.info.backend;
    /** The CPU engine's threads: `{ count, reason }`, `reason` saying why only one (else null). */
    this.threads = options.cpu;
    // Bad input rejects the returned promise (it never throws synchronously), like OpenAI's SDK.
    const create = (kind) => (p) => {
      try {
        return this._create(kind, p);
      } catch (e) {
        return Promise.reject(e);
      }
    };
    this.chat = { completions: { create: create('chat') } };
    this.completions = { create: create('text') };
  }

  /** Requests run one at a time, in order. */
  _serial(fn) {
    const result = this._queue.then(fn, fn);
    this._queue = result.catch(() => {});
    return result;
  }

  _params(where, p) {
    if (p.n !== undefined && p.n !== 1) throw new TypeError(`${where}: only n = 1 is supported`);
    let stop = p.stop ?? [];
    if (typeof stop === 'string') stop = [stop];
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string')) {
      throw new TypeError(`${where}: stop must be a string or an array of strings`);
    }
    const maxTokens = number(where, 'max_tokens', p.max_tokens ?? p.max_completion_tokens, 1, 1 << 20);
    return {
      temperature: number(where, 'temperature', p.temperature, 0, 2) ?? 1,
      top_p: number(where, 'top_p', p.top_p, 0, 1) ?? 1,
      top_k: number(where, 'top_k', p.top_k, 0, 1 << 20) ?? 0,
      min_p: number(where, 'min_p', p.min_p, 0, 1) ?? 0,
      max_tokens: maxTokens ?? 512,
      n_ctx: this._contextSize,
      seed: number(where, 'seed', p.seed, 0, Number.MAX_SAFE_INTEGER) ?? Math.floor(Math.random() * 2 ** 32),
      stop,
      format: outputFormat(where, p.response_format, p.grammar),
      raw: false,
      ignore_eos: false,
      reuse: true,
      snapshot: false,
    };
  }

  _create(kind, p) {
    const where = kind === 'chat' ? 'chat.completions.create' : 'completions.create';
    checkOptions(where, p, kind === 'chat' ? CHAT_OPTIONS : COMPLETION_OPTIONS);
    const params = this._params(where, p);
    if (p.tools !== undefined && p.tools !== null) {
      if (!Array.isArray(p.tools)) throw new TypeError(`${where}: tools must be an array of { type: 'function', function: {...} }`);
      const choice = p.tool_choice ?? 'auto';
      const named = choice !== null && typeof choice === 'object';
      if (!named && !['auto', 'none', 'required'].includes(choice)) {
        throw new TypeError(`${where}: tool_choice must be "auto", "none", "required" or { type: 'function', function: { name } }, not ${JSON.stringify(choice)}`);
      }
      if (named) {
        const name = choice.function && choice.function.name;
        if (choice.type !== 'function' || typeof name !== 'string') {
          throw new TypeError(`${where}: tool_choice must be { type: 'function', function: { name } }`);
        }
        if (!p.tools.some((t) => t && t.function && t.function.name === name)) {
          throw new TypeError(`${where}: tool_choice names "${name}", which is not among the tools`);
        }
      }
      if (choice !== 'auto' && choice !== 'none' && p.tools.length === 0) {
        throw new TypeError(`${where}: tool_choice requires a call, but tools is empty`);
      }
      if (choice !== 'none' && p.tools.length > 0) {
        // A required or named call is enforced by the engine with a grammar.
        params.tools = p.tools;
        params.tool_choice = choice;
      }
    } else if (p.tool_choice !== undefined) {
      throw new TypeError(`${where}: tool_choice without tools`);
    }
    const withTools = params.tools !== undefined;
    let generate;
    if (kind === 'chat') {
      generate = { type: 'Generate', chat_id: 'chat', messages: turns(p.messages), params };
    } else {
      if (typeof p.prompt !== 'string') throw new TypeError(`${where}: prompt must be a string`);
      params.raw = true;
      generate = { type: 'Generate', chat_id: 'completion', messages: [{ role: 'user', content: p.prompt }], params };
    }
    if (p.signal && p.signal.aborted) return Promise.reject(abortError());
    const id = newId(kind === 'chat' ? 'chatcmpl' : 'cmpl');
    const created = Math.floor(Date.now() / 1000);
    const model = this.model.name;
    if (p.stream) {
      // The stream starts when its turn comes (requests run one at a time, so read it to the end
      // or break out of the loop); the promise resolves at once, like OpenAI's.
      let started;
      let release = () => {};
      const turn = new Promise((resolve) => { started = resolve; });
      this._serial(() => new Promise((resolve) => { release = resolve; started(); }));
      const link = this._link;
      const iterator = (async function* () {
        await turn;
        try {
          if (p.signal && p.signal.aborted) throw abortError();
          const req = run(link, generate, p.signal);
          const events = req.events();
          if (kind === 'chat') {
            yield { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] };
          }
          for (;;) {
            const { value, done } = await events.next();
            if (done) {
              const calls = openaiToolCalls(value.tool_calls);
              const finish = calls.length ? 'tool_calls' : (FINISH[value.stop] ?? 'stop');
              yield kind === 'chat'
                ? { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: {}, finish_reason: finish }], usage: usage(value) }
                : { id, object: 'text_completion', created, model, choices: [{ index: 0, text: '', finish_reason: finish }], usage: usage(value) };
              return;
            }
            if (value.type === 'ToolDelta') {
              // With tools the engine sends the reply as content and tool-call deltas: a call's
              // id, type and name first, then its arguments piece by piece (OpenAI's chunks).
              const d = value.delta;
              let delta;
              if (d.kind === 'content') delta = { content: d.text };
              else if (d.kind === 'call') delta = { tool_calls: [{ index: d.index, id: `call_${d.index}`, type: 'function', function: { name: d.name, arguments: '' } }] };
              else delta = { tool_calls: [{ index: d.index, function: { arguments: d.text } }] };
              yield { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: null }] };
              continue;
            }
            if (!value.piece || withTools) continue;
            yield kind === 'chat'
              ? { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { content: value.piece }, finish_reason: null }] }
              : { id, object: 'text_completion', created, model, choices: [{ index: 0, text: value.piece, finish_reason: null }] };
          }
        } finally {
          release();
        }
      })();
      return Promise.resolve(iterator);
    }
    return this._serial(async () => {
      if (p.signal && p.signal.aborted) throw abortError();
      const events = run(this._link, generate, p.signal).events();
      let text = '';
      for (;;) {
        const { value, done } = await events.next();
        if (done) {
          const calls = openaiToolCalls(value.tool_calls);
          const finish = calls.length ? 'tool_calls' : (FINISH[value.stop] ?? 'stop');
          const message = { role: 'assistant', content: withTools ? (value.content ?? text) : text };
          if (calls.length) {
            message.tool_calls = calls;
            if (!message.content.trim()) message.content = null;
          }
          return kind === 'chat'
            ? { id, object: 'chat.completion', created, model, choices: [{ index: 0, message, finish_reason: finish, logprobs: null }], usage: usage(value) }
            : { id, object: 'text_completion', created, model, choices: [{ index: 0, text, finish_reason: finish, logprobs: null }], usage: usage(value) };
        }
        if (value.type === 'Token') text += value.piece;
      }
    });
  }

  /** Token ids of `text` (`special`: special-token text such as `<|im_end|>` becomes its id). */
  async tokenize(text, { special = false } = {}) {
    if (typeof text !== 'string') throw new TypeError('tokenize: text must be a string');
    return this._serial(() => {
      const got = this._link.wait((m) => (m.type === 'Tokens' ? m.ids : undefined));
      this._link.post({ type: 'Tokenize', text, special: !!special });
      return got;
    });
  }

  /** The text of token ids. */
  async detokenize(ids) {
    if (!Array.isArray(ids) || ids.some((i) => !Number.isInteger(i) || i < 0)) {
      throw new TypeError('detokenize: ids must be an array of token ids');
    }
    return this._serial(() => {
      const got = this._link.wait((m) => (m.type === 'Text' ? m.text : undefined));
      this._link.post({ type: 'Detokenize', ids });
      return got;
    });
  }

  /** Stop the engine and free its memory (the worker ends); the engine cannot be used after. */
  async unload() {
    this._link.fail('the engine was unloaded');
    this._link.worker.terminate();
  }
}

/**
 * Start the engine in a Web Worker and load a GGUF model into it.
 * @param {import('./index.d.ts').EngineOptions} options
 */
export async function createEngine(options) {
  checkOptions('createEngine', options ?? {}, ENGINE_OPTIONS);
  const { model, backend = 'auto', onProgress, signal, contextSize = 2048, workerUrl, cache = 'indexeddb', threads = 'auto' } = options ?? {};
  if (!['indexeddb', 'none'].includes(cache)) {
    throw new TypeError(`createEngine: cache must be "indexeddb" or "none", got ${JSON.stringify(cache)}`);
  }
  if (model === undefined) throw new TypeError('createEngine: model is required (a URL, a File or a Blob)');
  if (!['auto', 'webgpu', 'cpu'].includes(backend)) {
    throw new TypeError(`createEngine: backend must be "auto", "webgpu" or "cpu", got ${JSON.stringify(backend)}`);
  }
  number('createEngine', 'contextSize', contextSize, 64, 1 << 20);
  if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS)) {
    throw new TypeError(`createEngine: threads must be "auto" or an integer from 1 to ${MAX_THREADS}, got ${JSON.stringify(threads)}`);
  }
  if (signal && signal.aborted) throw abortError();
  const wanted = wantedThreads(threads, workerUrl);
  let link = null;
  let cpu = { count: 1, reason: wanted.reason };
  if (wanted.count > 1) {
    // The threaded build (dist/worker_mt_loader.js; its pool workers, dist/worker_mt_pool.js, are
    // found beside it). Missing from the package, or unable to run here: the default worker.
    try {
      link = await startWorker(new URL('./dist/worker_mt_loader.js', import.meta.url));
      const running = link.wait((m) => (m.type === 'Threads' ? m.threads : undefined));
      link.post({ type: 'Threads', threads: wanted.count });
      const count = await running;
      cpu = count > 1 ? { count, reason: null } : { count: 1, reason: 'one thread: the engine could not start more' };
    } catch (e) {
      if (link) link.worker.terminate();
      link = null;
      cpu = { count: 1, reason: `one thread: the multi-threaded engine could not be started (${e.message})` };
    }
  }
  try {
    link ??= await startWorker(workerUrl ?? new URL('./engine-worker.js', import.meta.url));
    const info = await load(link, model, { backend, onProgress, signal, cache });
    return new Engine(link, info, { contextSize, cpu });
  } catch (e) {
    if (link) link.worker.terminate();
    throw e;
  }
}

/** Threads to ask for, or one and why. */
function wantedThreads(threads, workerUrl) {
  const one = (reason) => ({ count: 1, reason });
  if (threads === 1) return one('one thread, as asked (threads: 1)');
  if (workerUrl !== undefined) return one('one thread: a custom workerUrl runs the single-threaded engine');
  if (typeof crossOriginIsolated === 'undefined' || !crossOriginIsolated) {
    return one('one thread: the page is not cross-origin isolated (its server does not send COOP/COEP headers), so the engine cannot share memory with other threads');
  }
  const cores = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  if (threads === 'auto') {
    if (cores <= 1) return one('one thread: the browser reports one CPU core');
    return { count: Math.min(cores, AUTO_MAX_THREADS), reason: null };
  }
  return { count: threads, reason: null };
}

/** A started worker, once it says `Ready` (a script that fails to load or run rejects). */
async function startWorker(url) {
  const link = new Link(new Worker(url));
  try {
    await link.wait((m) => (m.type === 'Ready' ? true : undefined));
    return link;
  } catch (e) {
    link.worker.terminate();
    throw e;
  }
}
