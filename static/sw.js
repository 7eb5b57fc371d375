// wasm-chord service worker: keeps the app shell (HTML, JS, wasm, CSS, icons) so the page loads
// and chats with a cached model when the network is off.
//
// Strategy: network first (an online visit always gets the current build and refreshes the copy),
// the cached copy when the network fails. Model bytes never pass through here: they live in
// IndexedDB (the app's own cache), so /models/ and Range requests go straight to the network.
const CACHE = 'wasm-chord-shell-v1';
// Files the app needs that index.html does not name (the engine worker).
const EXTRA = ['worker_loader.js', 'worker.js', 'worker_bg.wasm', 'static/manifest.webmanifest',
  'static/icon.svg', 'static/icon-192.png', 'static/icon-512.png'];

function shellUrl(path) {
  return new URL(path, self.registration.scope).href;
}

function bypass(request) {
  const url = new URL(request.url);
  return request.method !== 'GET' || url.origin !== self.location.origin ||
    url.pathname.includes('/models/') || request.headers.has('range');
}

// Install: fetch index.html, then every same-origin asset it names plus EXTRA, into the cache.
self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    const index = await fetch(shellUrl('./'), { cache: 'no-store' });
    if (!index.ok) throw new Error(`index.html: HTTP ${index.status}`);
    const html = await index.clone().text();
    await cache.put(shellUrl('./'), index);
    const urls = new Set(EXTRA.map(shellUrl));
    for (const m of html.matchAll(/(?:href|src|module_or_path:)\s*=?\s*["']([^"']+)["']/g)) {
      const u = new URL(m[1], self.registration.scope);
      if (u.origin === self.location.origin) urls.add(u.href);
    }
    for (const m of html.matchAll(/from\s+["']([^"']+\.js)["']/g)) urls.add(shellUrl(m[1]));
    await Promise.all([...urls].map(async (u) => {
      const r = await fetch(u, { cache: 'no-store' });
      if (r.ok) await cache.put(u, r);
    }));
    await self.skipWaiting();
  })());
});

// Activate: drop the caches of older versions and take control of open pages.
self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (bypass(request)) return;
  event.respondWith((async () => {
    try {
      const response = await fetch(request);
      if (response.ok && response.status === 200) {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(request, copy)));
      }
      return response;
    } catch (err) {
      const cached = await caches.match(request, { ignoreSearch: true }) ||
        (request.mode === 'navigate' ? await caches.match(shellUrl('./')) : undefined);
      if (cached) return cached;
      throw err;
    }
  })());
});
