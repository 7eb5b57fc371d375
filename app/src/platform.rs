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

/// What `navigator.gpu.requestAdapter()` gave this page: the badge says what will run before a
/// model is loaded (the engine makes the same choice: `inference::loader`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterProbe {
    /// No `navigator.gpu`.
    NoWebGpu,
    /// WebGPU exists but no adapter was given.
    NoAdapter,
    /// A GPU (its description, e.g. "nvidia ampere").
    Hardware(String),
    /// A software renderer (SwiftShader, WARP, lavapipe): slower than the CPU engine.
    Software(String),
}

impl AdapterProbe {
    /// Whether a model loaded with `pref` will run on WebGPU here.
    pub fn runs_on_gpu(&self, pref: inference::backend::BackendPref) -> bool {
        use inference::backend::BackendPref;
        match (self, pref) {
            (_, BackendPref::Cpu) => false,
            (Self::Hardware(_), _) => true,
            (Self::Software(_), BackendPref::WebGpu) => true,
            _ => false,
        }
    }

    /// The badge's label before a load, for the engine setting `pref`.
    pub fn label(&self, pref: inference::backend::BackendPref) -> String {
        use inference::backend::BackendPref;
        match (self, pref) {
            (_, BackendPref::Cpu) => "CPU engine (chosen in Settings)".into(),
            (Self::Hardware(_), _) => "WebGPU: models will run on your GPU".into(),
            (Self::Software(_), BackendPref::WebGpu) => {
                "WebGPU on a software renderer (forced in Settings)".into()
            }
            (Self::Software(_), _) => "WebGPU (software renderer): the CPU will be used".into(),
            (Self::NoAdapter, _) => "WebGPU has no adapter here: the CPU will be used".into(),
            (Self::NoWebGpu, _) => "No WebGPU in this browser: the CPU will be used".into(),
        }
    }

    /// One sentence under the label.
    pub fn detail(&self, pref: inference::backend::BackendPref) -> String {
        use inference::backend::BackendPref;
        match (self, pref) {
            (Self::Software(d), BackendPref::WebGpu) => format!(
                "{d} draws WebGPU on the CPU: replies will be very slow. Choose Automatic in \
                 Settings to use the faster CPU engine."
            ),
            (Self::Hardware(d), BackendPref::Cpu) | (Self::Software(d), BackendPref::Cpu) => {
                format!("WebGPU ({d}) is available; Settings → Engine switches to it.")
            }
            (Self::Hardware(d), _) => format!("Adapter: {d}."),
            (Self::Software(d), _) => format!(
                "The only WebGPU adapter is {d}, a software renderer: the SIMD-wasm CPU engine \
                 is faster."
            ),
            _ => "Models run on the SIMD-wasm CPU engine.".into(),
        }
    }

    /// A warning (amber): WebGPU forced onto a software renderer.
    pub fn warns(&self, pref: inference::backend::BackendPref) -> bool {
        matches!(
            (self, pref),
            (Self::Software(_), inference::backend::BackendPref::WebGpu)
        )
    }
}

/// Ask the browser for its WebGPU adapter (a software one counts: `isFallbackAdapter`, or a
/// known software renderer's name).
pub async fn probe_adapter() -> AdapterProbe {
    use wasm_bindgen::JsCast;
    let get = |o: &wasm_bindgen::JsValue, k: &str| {
        js_sys::Reflect::get(o, &wasm_bindgen::JsValue::from_str(k)).ok()
    };
    let Some(window) = web_sys::window() else {
        return AdapterProbe::NoWebGpu;
    };
    let Some(gpu) = get(&window.navigator(), "gpu").filter(|g| !g.is_undefined() && !g.is_null())
    else {
        return AdapterProbe::NoWebGpu;
    };
    let request = get(&gpu, "requestAdapter").and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let Some(promise) = request
        .and_then(|f| f.call0(&gpu).ok())
        .and_then(|p| p.dyn_into::<js_sys::Promise>().ok())
    else {
        return AdapterProbe::NoAdapter;
    };
    let adapter = match wasm_bindgen_futures::JsFuture::from(promise).await {
        Ok(a) if !a.is_null() && !a.is_undefined() => a,
        _ => return AdapterProbe::NoAdapter,
    };
    let info = get(&adapter, "info").unwrap_or(wasm_bindgen::JsValue::UNDEFINED);
    let text = |k: &str| {
        get(&info, k)
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let parts: Vec<String> = ["vendor", "architecture", "description"]
        .iter()
        .map(|k| text(k))
        .filter(|t| !t.is_empty())
        .collect();
    let description = if parts.is_empty() {
        "an unnamed adapter".to_owned()
    } else {
        parts.join(" ")
    };
    let fallback = [
        get(&info, "isFallbackAdapter"),
        get(&adapter, "isFallbackAdapter"),
    ]
    .into_iter()
    .flatten()
    .any(|v| v.as_bool() == Some(true));
    if fallback || is_software_name(&description) {
        AdapterProbe::Software(description)
    } else {
        AdapterProbe::Hardware(description)
    }
}

/// Names of software WebGPU renderers.
pub fn is_software_name(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    [
        "swiftshader",
        "llvmpipe",
        "lavapipe",
        "warp",
        "microsoft basic render",
        "software",
    ]
    .iter()
    .any(|n| d.contains(n))
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
    fn adapter_labels_say_what_will_run() {
        use inference::backend::BackendPref;
        let sw = AdapterProbe::Software("google swiftshader".into());
        assert_eq!(
            sw.label(BackendPref::Auto),
            "WebGPU (software renderer): the CPU will be used"
        );
        assert!(!sw.runs_on_gpu(BackendPref::Auto));
        assert!(sw.warns(BackendPref::WebGpu) && sw.runs_on_gpu(BackendPref::WebGpu));
        let hw = AdapterProbe::Hardware("nvidia ampere".into());
        assert!(hw.runs_on_gpu(BackendPref::Auto) && !hw.warns(BackendPref::WebGpu));
        assert!(!hw.runs_on_gpu(BackendPref::Cpu));
        assert!(is_software_name("Google SwiftShader Device (Subzero)"));
        assert!(!is_software_name("nvidia ampere"));
    }

    #[test]
    fn native_detection_is_cpu() {
        assert_eq!(detect_backend(), Backend::Cpu);
    }
}
