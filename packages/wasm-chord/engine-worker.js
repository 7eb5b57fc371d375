// The engine's Web Worker (a classic worker): wasm-chord's Rust engine host (app/src/bin/worker),
// the same one the wasm-chord web app runs, single-threaded. index.js starts it with
// `new Worker(new URL('./engine-worker.js', import.meta.url))` (the threaded build, where the page
// is cross-origin isolated, is dist/worker_mt_loader.js).
//
// Relaxed SIMD: the relaxed build (dist/worker_rs*, the same results bit for bit, faster 8-bit dot
// products) only where a module using i32x4.relaxed_dot_i8x16_i7x16_add_s validates and the
// package has it; else the default build.
const relaxed = (() => {
  try {
    const c = [0xfd, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    return WebAssembly.validate(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1,
      0x7b, 3, 2, 1, 0, 0x0a, 0x3d, 1, 0x3b, 0, ...c, ...c, ...c, 0xfd, 0x93, 0x02, 0x0b]));
  } catch (e) {
    return false;
  }
})();
let wasm = './dist/worker_bg.wasm';
try {
  if (!relaxed) throw new Error('no relaxed SIMD');
  importScripts('./dist/worker_rs.js');
  wasm = './dist/worker_rs_bg.wasm';
} catch (e) {
  importScripts('./dist/worker.js');
}
wasm_bindgen({ module_or_path: wasm });
