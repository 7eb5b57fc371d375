//! The system clipboard (`navigator.clipboard.writeText`).

/// Put `text` on the clipboard; `false` if the browser refused.
pub fn copy(text: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let clipboard = js_sys::Reflect::get(&window.navigator(), &"clipboard".into());
    let Ok(clipboard) = clipboard else {
        return false;
    };
    let write = js_sys::Reflect::get(&clipboard, &"writeText".into())
        .ok()
        .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
    write.is_some_and(|f| f.call1(&clipboard, &text.into()).is_ok())
}
