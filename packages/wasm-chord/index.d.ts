// Types of wasm-chord's OpenAI-style API (index.js).

export type Backend = 'auto' | 'webgpu' | 'cpu';

export type ModelSource = 'network' | 'resumed' | 'cache' | 'file';

export interface LoadProgress {
  phase: 'loading';
  source: ModelSource;
  /** Bytes the engine has consumed. */
  loaded: number;
  total: number;
}

export interface EngineOptions {
  /** A GGUF model: a URL (string or URL; downloaded, streamed to the engine), a File or a Blob. */
  model: string | URL | Blob;
  /** 'auto' (default): WebGPU on a hardware adapter, else the SIMD-wasm CPU engine. */
  backend?: Backend;
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Tokens of context (prompt + reply) per conversation; default 2048, at most the model's. */
  contextSize?: number;
  /** 'indexeddb' (default): a URL's model is kept in IndexedDB (the wasm-chord app's own store,
   * resumable) and loaded from there next time; 'none': downloaded every time. */
  cache?: 'indexeddb' | 'none';
  /** Where engine-worker.js is served from, when a bundler moves it (that worker runs one thread). */
  workerUrl?: string | URL;
  /** The CPU engine's threads: 'auto' (default: the cores, at most 8, where the page is
   * cross-origin isolated — COOP/COEP headers — else one) or a count (1: single-threaded). */
  threads?: 'auto' | number;
}

export interface TextPart { type: 'text'; text: string }

export interface ToolCall {
  id: string;
  type: 'function';
  /** `arguments`: JSON text. */
  function: { name: string; arguments: string };
}

export interface Tool {
  type: 'function';
  function: { name: string; description?: string; parameters?: object };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string | TextPart[] | null;
  /** An assistant message's tool calls (as a completion returned them). */
  tool_calls?: ToolCall[];
  /** A `tool` message: the call it answers. */
  tool_call_id?: string;
  name?: string;
}

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; json_schema: { name?: string; schema: object; strict?: boolean } };

interface SamplingParams {
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  seed?: number;
  stop?: string | string[];
  /** Structured output: JSON, or JSON valid against a JSON Schema (grammar-constrained). */
  response_format?: ResponseFormat;
  /** Structured output with a GBNF grammar (llama.cpp's format); not with response_format. */
  grammar?: string;
  signal?: AbortSignal;
  /** Ignored (the engine runs the model it loaded). */
  model?: string;
  n?: 1;
}

export interface ChatCompletionParams extends SamplingParams {
  messages: ChatMessage[];
  max_completion_tokens?: number;
  /** Rendered by the model's chat template; the reply is parsed into `tool_calls` (Qwen2.5/3 and
   * Hermes `<tool_call>` JSON, Llama 3.x JSON, Mistral `[TOOL_CALLS]`). */
  tools?: Tool[];
  /** 'auto' (default) or 'none' (the tools are not given to the model). */
  /** `'required'` or a named function: the reply is a call (enforced with a grammar). */
  tool_choice?: 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };
}

export interface CompletionParams extends SamplingParams {
  /** The raw prompt (no chat template). */
  prompt: string;
}

/** A streamed piece of a call: the first of each `index` has `id`, `type` and the name (arguments
 * ''); the following ones add to `function.arguments`. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** `cached_tokens`: prompt tokens the conversation's KV cache already held (not evaluated). */
  prompt_tokens_details: { cached_tokens: number };
  timings: {
    prompt_evaluated: number;
    prompt_per_second: number;
    predicted_per_second: number;
    time_to_first_token_ms: number;
  };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: 0; message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] }; finish_reason: FinishReason; logprobs: null }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: 0; delta: { role?: 'assistant'; content?: string; tool_calls?: ToolCallDelta[] }; finish_reason: FinishReason | null }[];
  /** On the last chunk. */
  usage?: Usage;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: 0; text: string; finish_reason: FinishReason | null; logprobs?: null }[];
  usage?: Usage;
}

export class WasmChordError extends Error {
  code: 'engine_error' | 'bad_model' | 'download_failed' | 'engine_stopped' | 'unsupported';
}

export interface Engine {
  model: { name: string; architecture: string; parameters: number; context_length: number };
  backend: { kind: 'webgpu' | 'cpu'; adapter?: string | null; fallback?: string | null };
  /** The CPU engine's threads; `reason` says why only one (else null). */
  threads: { count: number; reason: string | null };
  /** Where the model's bytes came from. */
  source: ModelSource;
  chat: {
    completions: {
      create(p: ChatCompletionParams & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(p: ChatCompletionParams & { stream?: false }): Promise<ChatCompletion>;
    };
  };
  completions: {
    create(p: CompletionParams & { stream: true }): Promise<AsyncIterable<Completion>>;
    create(p: CompletionParams & { stream?: false }): Promise<Completion>;
  };
  tokenize(text: string, options?: { special?: boolean }): Promise<number[]>;
  detokenize(ids: number[]): Promise<string>;
  unload(): Promise<void>;
}

export function createEngine(options: EngineOptions): Promise<Engine>;
