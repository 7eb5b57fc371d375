//! The model cache in IndexedDB, through rexie. Layout and rules: `chord_app::cache`.
//!
//! A chunk and the entry's chunk count are written in one transaction, so after a crash, a reload
//! or a full disk the entry never claims a chunk that is not there.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Uint8Array};
use rexie::{ObjectStore, Rexie, TransactionMode};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use chord_app::cache::CachedModel;
use serde::de::DeserializeOwned;
use serde::Serialize;

const DB_NAME: &str = "wasm-chord";
/// Version 2 added the "chats" store (conversations, `chat_store.rs`), version 3 the "kv" store
/// (each conversation's saved KV cache, `engine::KvSnapshot` bytes).
const DB_VERSION: u32 = 3;
const MODELS: &str = "models";
const CHUNKS: &str = "chunks";
pub(crate) const CHATS: &str = "chats";
const KV: &str = "kv";

thread_local! {
    static DB: RefCell<Option<Rc<Rexie>>> = const { RefCell::new(None) };
}

/// A user-facing sentence for an IndexedDB failure; a full disk is named as such.
fn describe(e: &rexie::Error) -> String {
    let inner = match e {
        rexie::Error::IdbError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    if inner.contains("Quota") {
        "the browser's storage for this site is full (delete cached models in Storage, or free disk space)".into()
    } else {
        format!("browser storage error: {inner}")
    }
}

async fn db() -> Result<Rc<Rexie>, String> {
    if let Some(db) = DB.with(|d| d.borrow().clone()) {
        return Ok(db);
    }
    let db = Rexie::builder(DB_NAME)
        .version(DB_VERSION)
        .add_object_store(ObjectStore::new(MODELS))
        .add_object_store(ObjectStore::new(CHUNKS))
        .add_object_store(ObjectStore::new(CHATS))
        .add_object_store(ObjectStore::new(KV))
        .build()
        .await
        .map_err(|e| format!("Cannot open the model cache: {}", describe(&e)))?;
    let db = Rc::new(db);
    DB.with(|d| *d.borrow_mut() = Some(db.clone()));
    Ok(db)
}

/// A serde value as a plain JS object (readable in DevTools, no binary encoding).
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    js_sys::JSON::parse(&text).map_err(|_| "cannot encode the record for storage".to_owned())
}

/// A stored record back; `None` for one that does not decode (written by another version).
fn from_js<T: DeserializeOwned>(value: &JsValue) -> Option<T> {
    let text = js_sys::JSON::stringify(value).ok()?.as_string()?;
    serde_json::from_str(&text).ok()
}

/// The record under `key` in `store`, if any.
pub(crate) async fn get_one<T: DeserializeOwned>(
    store: &str,
    key: &str,
) -> Result<Option<T>, String> {
    let db = db().await?;
    let tx = db
        .transaction(&[store], TransactionMode::ReadOnly)
        .map_err(|e| describe(&e))?;
    let s = tx.store(store).map_err(|e| describe(&e))?;
    let v = s
        .get(JsValue::from_str(key))
        .await
        .map_err(|e| describe(&e))?;
    Ok(v.as_ref().and_then(from_js))
}

/// Every record of `store` that decodes.
pub(crate) async fn get_all<T: DeserializeOwned>(store: &str) -> Result<Vec<T>, String> {
    let db = db().await?;
    let tx = db
        .transaction(&[store], TransactionMode::ReadOnly)
        .map_err(|e| describe(&e))?;
    let s = tx.store(store).map_err(|e| describe(&e))?;
    let all = s.get_all(None, None).await.map_err(|e| describe(&e))?;
    Ok(all.iter().filter_map(from_js).collect())
}

/// Write `value` under `key` in `store`, alone in one transaction.
pub(crate) async fn put_one<T: Serialize>(store: &str, key: &str, value: &T) -> Result<(), String> {
    let db = db().await?;
    let tx = db
        .transaction(&[store], TransactionMode::ReadWrite)
        .map_err(|e| describe(&e))?;
    let s = tx.store(store).map_err(|e| describe(&e))?;
    s.put(&to_js(value)?, Some(&JsValue::from_str(key)))
        .await
        .map_err(|e| describe(&e))?;
    committed(tx.done().await)
}

/// Remove the record under `key` in `store`.
pub(crate) async fn delete_one(store: &str, key: &str) -> Result<(), String> {
    let db = db().await?;
    let tx = db
        .transaction(&[store], TransactionMode::ReadWrite)
        .map_err(|e| describe(&e))?;
    let s = tx.store(store).map_err(|e| describe(&e))?;
    s.delete(JsValue::from_str(key))
        .await
        .map_err(|e| describe(&e))?;
    committed(tx.done().await)
}

/// Save a conversation's KV cache (replacing the previous one).
pub async fn put_kv(chat_id: &str, bytes: &js_sys::ArrayBuffer) -> Result<(), String> {
    let db = db().await?;
    let tx = db
        .transaction(&[KV], TransactionMode::ReadWrite)
        .map_err(|e| describe(&e))?;
    let s = tx.store(KV).map_err(|e| describe(&e))?;
    s.put(bytes, Some(&JsValue::from_str(chat_id)))
        .await
        .map_err(|e| describe(&e))?;
    committed(tx.done().await)
}

/// A conversation's saved KV cache, if any.
pub async fn get_kv(chat_id: &str) -> Result<Option<js_sys::ArrayBuffer>, String> {
    let db = db().await?;
    let tx = db
        .transaction(&[KV], TransactionMode::ReadOnly)
        .map_err(|e| describe(&e))?;
    let s = tx.store(KV).map_err(|e| describe(&e))?;
    let v = s
        .get(JsValue::from_str(chat_id))
        .await
        .map_err(|e| describe(&e))?;
    Ok(v.and_then(|v| v.dyn_into::<js_sys::ArrayBuffer>().ok()))
}

/// Forget a conversation's saved KV cache.
pub async fn delete_kv(chat_id: &str) -> Result<(), String> {
    delete_one(KV, chat_id).await
}

fn chunk_key(id: &str, index: u64) -> JsValue {
    Array::of2(&JsValue::from_str(id), &JsValue::from_f64(index as f64)).into()
}

fn committed(r: rexie::Result<rexie::TransactionResult>) -> Result<(), String> {
    match r {
        Ok(rexie::TransactionResult::Committed) => Ok(()),
        Ok(rexie::TransactionResult::Aborted) => {
            Err("the browser's storage refused the write (storage full?)".into())
        }
        Err(e) => Err(describe(&e)),
    }
}

/// The entry for `id`, if any.
pub async fn get(id: &str) -> Result<Option<CachedModel>, String> {
    get_one(MODELS, id).await
}

/// Every entry, complete or partial, newest first.
pub async fn list() -> Result<Vec<CachedModel>, String> {
    let mut out: Vec<CachedModel> = get_all(MODELS).await?;
    out.sort_by(|a, b| b.updated_ms.total_cmp(&a.updated_ms));
    Ok(out)
}

/// Write the entry alone (a new download, or `complete` after verification).
pub async fn put(meta: &CachedModel) -> Result<(), String> {
    let mut meta = meta.clone();
    meta.updated_ms = js_sys::Date::now();
    put_one(MODELS, &meta.id, &meta).await
}

/// Store chunk `meta.chunks` and bump the count, in one transaction. `meta` is updated only when
/// the transaction committed.
pub async fn append_chunk(meta: &mut CachedModel, bytes: &Uint8Array) -> Result<(), String> {
    let db = db().await?;
    let mut next = meta.clone();
    next.chunks += 1;
    next.updated_ms = js_sys::Date::now();
    let tx = db
        .transaction(&[MODELS, CHUNKS], TransactionMode::ReadWrite)
        .map_err(|e| describe(&e))?;
    let chunks = tx.store(CHUNKS).map_err(|e| describe(&e))?;
    let models = tx.store(MODELS).map_err(|e| describe(&e))?;
    // Store a copy of exactly these bytes (a view may sit in a larger buffer).
    let owned = Uint8Array::new(bytes).buffer();
    chunks
        .put(&owned, Some(&chunk_key(&meta.id, meta.chunks)))
        .await
        .map_err(|e| describe(&e))?;
    models
        .put(&to_js(&next)?, Some(&JsValue::from_str(&next.id)))
        .await
        .map_err(|e| describe(&e))?;
    committed(tx.done().await)?;
    *meta = next;
    Ok(())
}

/// Chunk `index` of `id`.
pub async fn read_chunk(id: &str, index: u64) -> Result<Uint8Array, String> {
    let db = db().await?;
    let tx = db
        .transaction(&[CHUNKS], TransactionMode::ReadOnly)
        .map_err(|e| describe(&e))?;
    let store = tx.store(CHUNKS).map_err(|e| describe(&e))?;
    let v = store
        .get(chunk_key(id, index))
        .await
        .map_err(|e| describe(&e))?
        .ok_or_else(|| format!("chunk {index} of the cached model is missing"))?;
    if v.is_instance_of::<js_sys::ArrayBuffer>() || v.is_instance_of::<Uint8Array>() {
        Ok(Uint8Array::new(&v))
    } else {
        Err(format!("chunk {index} of the cached model is not bytes"))
    }
}

/// Remove the entry and all its chunks.
pub async fn delete(id: &str) -> Result<(), String> {
    let db = db().await?;
    let meta = get(id).await?;
    let tx = db
        .transaction(&[MODELS, CHUNKS], TransactionMode::ReadWrite)
        .map_err(|e| describe(&e))?;
    let chunks = tx.store(CHUNKS).map_err(|e| describe(&e))?;
    let models = tx.store(MODELS).map_err(|e| describe(&e))?;
    // Delete every chunk the size allows (a partial entry may have stored fewer).
    let n = meta.map(|m| m.total_chunks().max(m.chunks)).unwrap_or(0);
    for i in 0..n {
        chunks
            .delete(chunk_key(id, i))
            .await
            .map_err(|e| describe(&e))?;
    }
    models
        .delete(JsValue::from_str(id))
        .await
        .map_err(|e| describe(&e))?;
    committed(tx.done().await)
}

fn storage_manager() -> Option<JsValue> {
    let nav = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).ok()?;
    let storage = js_sys::Reflect::get(&nav, &JsValue::from_str("storage")).ok()?;
    (!storage.is_undefined()).then_some(storage)
}

async fn call_storage(method: &str) -> Option<JsValue> {
    let storage = storage_manager()?;
    let f: js_sys::Function = js_sys::Reflect::get(&storage, &JsValue::from_str(method))
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = f.call0(&storage).ok()?.dyn_into().ok()?;
    JsFuture::from(promise).await.ok()
}

/// `(usage, quota)` in bytes from `navigator.storage.estimate()`.
pub async fn estimate() -> Option<(f64, f64)> {
    let est = call_storage("estimate").await?;
    let get = |k: &str| {
        js_sys::Reflect::get(&est, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_f64())
    };
    Some((get("usage")?, get("quota")?))
}

/// Ask the browser not to evict our storage under pressure; `Some(granted)`.
pub async fn persist() -> Option<bool> {
    call_storage("persist").await?.as_bool()
}
