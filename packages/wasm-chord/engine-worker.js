// The engine's Web Worker (a classic worker): wasm-chord's Rust engine host (app/src/bin/worker),
// the same one the wasm-chord web app runs. index.js starts it with
// `new Worker(new URL('./engine-worker.js', import.meta.url))`.
importScripts('./dist/worker.js');
wasm_bindgen({ module_or_path: './dist/worker_bg.wasm' });
