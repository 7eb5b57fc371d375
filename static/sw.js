// wasm-chord service worker: keeps the app shell (HTML, JS, wasm, CSS, icons) so the page loads
// and chats with a cached model when the network is off.
//
// What it caches: exactly this build's app-shell files, listed in MANIFEST when the app is built
// (scripts/trunk-post-build.py, Trunk's post_build hook). Any other request (a model, a GGUF URL
// typed by the user, /models/, a Range request, another origin) is not touched: the browser
// fetches it as if there were no service worker. Model bytes live in IndexedDB (the app's own
// cache), never here. A response marked `Cache-Control: no-store` is never stored.
//
// Strategy: network first (an online visit always gets the current build and refreshes the copy),
// the cached copy when the network fails. The cache is named after the build, so a new build
// installs a new cache and activation deletes the older ones.
//
// Cross-origin isolation on any static host: the CPU engine runs several threads only on a
// cross-origin isolated page (SharedArrayBuffer). A host that cannot send the headers still gets
// it: every app-shell response this worker serves (the page, its scripts, the engine workers and
// their wasm; network or cache) carries `Cross-Origin-Opener-Policy: same-origin` and
// `Cross-Origin-Embedder-Policy: require-corp` where the server sent none (what a server sends
// wins). The cached copies stay as they came; the headers are added on the way out. A page loaded
// before this worker controlled it is not isolated (one thread) until it is loaded again. Nothing
// else changes: other requests are still not touched (the model downloads are CORS fetches, which
// require-corp allows).
const MANIFEST = {"build":"dev","files":["./"]}; // replaced at build time
const PREFIX = 'wasm-chord-shell-';
const CACHE = PREFIX + MANIFEST.build;

function scopeUrl(path) {
  return new URL(path, self.registration.scope).href;
}

const ROOT = scopeUrl('./');
const SHELL = new Set(MANIFEST.files.map(scopeUrl));

/// The cache key of an app-shell request, or null for anything else.
function shellKey(request) {
  if (request.method !== 'GET' || request.headers.has('range')) return null;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return null;
  url.search = '';
  url.hash = '';
  const href = url.href;
  if (href === ROOT || href === scopeUrl('./index.html')) return ROOT;
  if (!SHELL.has(href)) return null;
  // Never a model, whatever the list says.
  if (url.pathname.includes('/models/') || url.pathname.toLowerCase().endsWith('.gguf')) return null;
  return href;
}

/// `response` with the cross-origin isolation headers the server did not send.
function isolated(response) {
  if (response.type === 'opaque' || response.type === 'opaqueredirect' || response.status === 0) {
    return response;
  }
  const coop = response.headers.has('cross-origin-opener-policy');
  const coep = response.headers.has('cross-origin-embedder-policy');
  if (coop && coep) return response;
  const headers = new Headers(response.headers);
  if (!coop) headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  if (!coep) headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

function noStore(headers) {
  return /(^|,)\s*no-store\s*(,|$)/i.test(headers.get('cache-control') || '');
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await Promise.all([...SHELL].map(async (url) => {
      const response = await fetch(url, { cache: 'reload' });
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      if (!noStore(response.headers)) await cache.put(url, response);
    }));
    await self.skipWaiting();
  })());
});

// Activate: drop the caches of older builds and take control of open pages.
self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith(PREFIX) && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const key = shellKey(request);
  if (!key) return;
  event.respondWith((async () => {
    try {
      const response = await fetch(request);
      if (response.status === 200 && !noStore(response.headers) && request.cache !== 'no-store') {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(key, copy)));
      }
      return isolated(response);
    } catch (err) {
      const cached = await caches.open(CACHE).then((c) => c.match(key));
      if (cached) return isolated(cached);
      throw err;
    }
  })());
});
