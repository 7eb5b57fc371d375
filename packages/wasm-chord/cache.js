// The model cache in IndexedDB: the wasm-chord web app's own store (database "wasm-chord",
// app/src/model_store.rs and app/src/cache.rs), so a model either of them downloaded is there for
// the other on the same origin.
//
//   models  key: the URL → { id, name, url, size, sha256, chunks, complete, updated_ms }
//   chunks  key: [id, index] → ArrayBuffer of CHUNK_BYTES (the last one shorter)
//
// A chunk and the entry's chunk count are written in one transaction, so an entry never claims a
// chunk that is not there; `complete` is set only after the engine accepted the whole file. An
// unfinished download resumes with an HTTP Range request from its last stored chunk.

export const CHUNK_BYTES = 4 << 20;
const DB_NAME = 'wasm-chord';
const DB_VERSION = 3; // the app's (models, chunks, chats, kv)
const STORES = ['models', 'chunks', 'chats', 'kv'];

const done = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});
const committed = (tx) => new Promise((resolve, reject) => {
  tx.oncomplete = () => resolve();
  tx.onerror = () => reject(tx.error);
  tx.onabort = () => reject(tx.error || new Error('the transaction was aborted'));
});

/** The database, or null where IndexedDB is unavailable (private windows, newer app version). */
export async function openCache() {
  if (typeof indexedDB === 'undefined') return null;
  try {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      for (const s of STORES) if (!req.result.objectStoreNames.contains(s)) req.result.createObjectStore(s);
    };
    return new ModelCache(await done(req));
  } catch {
    return null;
  }
}

class ModelCache {
  constructor(db) {
    this.db = db;
  }

  async get(id) {
    const tx = this.db.transaction('models');
    return (await done(tx.objectStore('models').get(id))) ?? null;
  }

  async put(entry) {
    const tx = this.db.transaction('models', 'readwrite');
    tx.objectStore('models').put({ ...entry, updated_ms: Date.now() }, entry.id);
    await committed(tx);
  }

  /** Store chunk `entry.chunks` and count it, in one transaction; returns the new entry. */
  async append(entry, bytes) {
    const next = { ...entry, chunks: entry.chunks + 1, updated_ms: Date.now() };
    const tx = this.db.transaction(['models', 'chunks'], 'readwrite');
    tx.objectStore('chunks').put(bytes.slice().buffer, [entry.id, entry.chunks]);
    tx.objectStore('models').put(next, entry.id);
    await committed(tx);
    return next;
  }

  async chunk(id, index) {
    const tx = this.db.transaction('chunks');
    const v = await done(tx.objectStore('chunks').get([id, index]));
    if (!v) throw new Error(`chunk ${index} of the cached model is missing`);
    return new Uint8Array(v);
  }

  /** Remove the entry and its chunks. */
  async delete(id) {
    const tx = this.db.transaction(['models', 'chunks'], 'readwrite');
    tx.objectStore('models').delete(id);
    tx.objectStore('chunks').delete(IDBKeyRange.bound([id, 0], [id, Infinity]));
    await committed(tx);
  }
}

const totalChunks = (size) => Math.ceil(size / CHUNK_BYTES);

/**
 * The model at `url` as chunks, from the cache where it is stored, else downloaded (resuming a
 * partial download) and stored as it arrives. Returns { name, size, chunks, source, entryId };
 * the caller marks the entry complete (`markComplete`) once the engine accepted it, or deletes it
 * (`forget`) when the engine rejected the bytes.
 */
export async function cachedDownload(cache, url, name, signal, fetchChunks) {
  let entry = await cache.get(url).catch(() => null);
  if (entry && entry.complete && entry.chunks === totalChunks(entry.size)) {
    return { name: entry.name || name, size: entry.size, source: 'cache', chunks: replay(cache, entry, entry.chunks) };
  }
  const have = entry && entry.chunks > 0 ? entry.chunks * CHUNK_BYTES : 0;
  const resp = await fetch(url, { signal, headers: have ? { Range: `bytes=${have}-` } : {} });
  if (!resp.ok) throw Object.assign(new Error(`HTTP ${resp.status}`), { status: resp.status });
  let size;
  if (resp.status === 206) {
    const m = /bytes\s+(\d+)-\d+\/(\d+)/.exec(resp.headers.get('content-range') || '');
    if (!m || Number(m[1]) !== have || Number(m[2]) !== entry.size) {
      await cache.delete(url).catch(() => {});
      throw new Error('the server answered the resume request with other bytes; try again');
    }
    size = entry.size;
  } else {
    size = Number(resp.headers.get('content-length'));
    if (!size) return null; // no length: not cached (the caller downloads it plainly)
    if (entry) await cache.delete(url).catch(() => {});
    entry = null;
  }
  if (!entry) {
    entry = { id: url, name, url, size, sha256: null, chunks: 0, complete: false, updated_ms: 0 };
    await cache.put(entry);
  }
  const stored = entry.chunks;
  const start = entry;
  async function* chunks() {
    let e = start;
    yield* replay(cache, e, stored);
    for await (const chunk of fetchChunks(resp.body)) {
      try {
        e = await cache.append(e, chunk);
      } catch {
        // Storage is full or refused: go on without caching.
      }
      yield chunk;
    }
  }
  return { name, size, source: stored ? 'resumed' : 'network', chunks: chunks() };
}

async function* replay(cache, entry, count) {
  for (let i = 0; i < count; i++) yield await cache.chunk(entry.id, i);
}

export async function markComplete(cache, url) {
  const e = await cache.get(url);
  if (e && e.chunks === totalChunks(e.size)) await cache.put({ ...e, complete: true });
}

export async function forget(cache, url) {
  await cache.delete(url);
}
