//! wasm-chord web app entry point: install the panic hook and mount the root component.

mod app;
mod chat_store;
mod clipboard;
mod components;
mod engine_link;
mod fit_check;
mod keyboard;
mod loads;
mod model_store;
mod platform;
mod state;

fn main() {
    console_error_panic_hook::set_once();
    platform::register_service_worker();
    leptos::mount::mount_to_body(app::App);
}
