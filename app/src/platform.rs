//! What the browser offers the engine: WebGPU, or the SIMD-wasm CPU fallback.

/// Which compute path the engine will use in this browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    WebGpu,
    Cpu,
}

impl Backend {
    pub fn from_webgpu_available(available: bool) -> Self {
        if available {
            Self::WebGpu
        } else {
            Self::Cpu
        }
    }

    /// Short label for the status badge.
    pub fn label(self) -> &'static str {
        match self {
            Self::WebGpu => "WebGPU available",
            Self::Cpu => "CPU fallback",
        }
    }

    /// One sentence on what that means for the user.
    pub fn detail(self) -> &'static str {
        match self {
            Self::WebGpu => "Models will run on your GPU through wasm-chord's WGSL kernels.",
            Self::Cpu => {
                "This browser has no WebGPU (navigator.gpu); models will run on the SIMD-wasm CPU path."
            }
        }
    }

    /// CSS modifier for the badge.
    pub fn css_class(self) -> &'static str {
        match self {
            Self::WebGpu => "badge badge-gpu",
            Self::Cpu => "badge badge-cpu",
        }
    }
}

/// Whether `navigator.gpu` exists. Any failure to look (no window, a throwing getter) counts as
/// "no WebGPU": the CPU path always works.
pub fn webgpu_available() -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let navigator = window.navigator();
    match js_sys::Reflect::get(&navigator, &wasm_bindgen::JsValue::from_str("gpu")) {
        Ok(gpu) => !gpu.is_undefined() && !gpu.is_null(),
        Err(_) => false,
    }
}

/// The backend this browser will use.
pub fn detect_backend() -> Backend {
    // `web_sys::window()` panics off wasm32 (no JS host), so native builds and tests never look.
    if cfg!(target_arch = "wasm32") {
        Backend::from_webgpu_available(webgpu_available())
    } else {
        Backend::Cpu
    }
}

/// Register the service worker (`dist/sw.js`) that keeps the app shell for offline use. Browsers
/// without service workers (or pages not served over http(s)/localhost) simply skip it.
pub fn register_service_worker() {
    if !cfg!(target_arch = "wasm32") {
        return;
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    let sw = js_sys::Reflect::get(&window.navigator(), &"serviceWorker".into());
    let Ok(sw) = sw else { return };
    if sw.is_undefined() {
        return;
    }
    let register = js_sys::Reflect::get(&sw, &"register".into())
        .ok()
        .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
    if let Some(register) = register {
        if let Ok(p) = register.call1(&sw, &"./sw.js".into()) {
            if let Ok(p) = wasm_bindgen::JsCast::dyn_into::<js_sys::Promise>(p) {
                // A failed registration only costs offline support; say so in the console.
                let on_err =
                    wasm_bindgen::closure::Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new(
                        |e: wasm_bindgen::JsValue| {
                            web_sys::console::warn_2(&"service worker not registered:".into(), &e);
                        },
                    );
                let _ = p.catch(&on_err);
                on_err.forget();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_availability() {
        assert_eq!(Backend::from_webgpu_available(true), Backend::WebGpu);
        assert_eq!(Backend::from_webgpu_available(false), Backend::Cpu);
        assert_eq!(Backend::WebGpu.label(), "WebGPU available");
        assert_eq!(Backend::Cpu.label(), "CPU fallback");
    }

    #[test]
    fn native_detection_is_cpu() {
        assert_eq!(detect_backend(), Backend::Cpu);
    }
}
