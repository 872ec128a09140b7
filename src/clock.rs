//! The one clock every timing reads: native and in the browser. A leaf.

#[cfg(not(target_arch = "wasm32"))]
use std::time::Instant;

/// Milliseconds of a monotonic clock, from an arbitrary start: `Instant` on native targets, the page's
/// `performance.now()` in a browser (`Date.now()` where a worker has no `performance`), where
/// `Instant` does not exist. Chromium rounds the page clock to 100 µs; callers time spans of
/// milliseconds.
#[must_use]
pub fn now_ms() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
    }
    #[cfg(target_arch = "wasm32")]
    {
        use js_sys::wasm_bindgen::JsCast;
        let global = js_sys::global();
        js_sys::Reflect::get(&global, &"performance".into())
            .ok()
            .and_then(|p| {
                let now = js_sys::Reflect::get(&p, &"now".into()).ok()?.dyn_into::<js_sys::Function>().ok()?;
                now.call0(&p).ok()?.as_f64()
            })
            .unwrap_or_else(js_sys::Date::now)
    }
}
