//! convgrad in the browser, on the page's WebGPU adapter: `convgrad demo` (`run`: the same loop,
//! `convgrad::learn`, kernels and plans), and the benchmark suites (`bench`, in [`bench`]). Each
//! reports to a JavaScript callback, which draws what it gets and returns a promise the loop awaits,
//! so the page repaints between readings.

pub mod bench;

use convgrad::learn::{FilterLearning, LearnConfig, Reading};
use convgrad::synthetic::FILTER_NAMES;
use convgrad::{Context, Error};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// Most steps before giving up, readings every this many, and the worst filter error to reach: as
/// `convgrad demo`'s defaults.
const MAX_STEPS: usize = 3000;
const LOG_EVERY: usize = 10;
const TARGET: f64 = 1e-3;

pub(crate) fn js_err(e: Error) -> JsValue {
    JsValue::from_str(&e.to_string())
}

fn list(v: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", v.into_iter().collect::<Vec<_>>().join(","))
}

fn floats(v: impl IntoIterator<Item = f32>) -> String {
    list(v.into_iter().map(|x| format!("{x:e}")))
}

/// Calls `on_event(json)` and awaits the promise it returns, if any.
pub(crate) async fn emit(on_event: &js_sys::Function, json: String) -> Result<(), JsValue> {
    let back = on_event.call1(&JsValue::NULL, &JsValue::from_str(&json))?;
    if let Ok(p) = back.dyn_into::<js_sys::Promise>() {
        JsFuture::from(p).await?;
    }
    Ok(())
}

fn reading_json(r: &Reading, learned: &[f32]) -> String {
    format!(
        "{{\"event\":\"reading\",\"step\":{},\"lr\":{:e},\"loss\":{:e},\"err\":{:e},\"worst\":{:e},\"per_filter\":{},\"learned\":{}}}",
        r.step,
        r.lr,
        r.loss,
        r.err,
        r.worst(),
        list(r.per_filter.iter().map(|e| format!("{e:e}"))),
        floats(learned.iter().copied())
    )
}

/// Learns the five hidden filters on this page's WebGPU adapter. `on_event` gets JSON strings: first
/// `{"event":"start", adapter, backend, profile, names, size, hidden}`, then one `reading` (step, lr,
/// loss, err, worst, per_filter, learned) every 10 steps. Returns the summary `{"event":"done",
/// recovered, steps, worst, per_filter, seconds}`.
///
/// # Errors
/// The message of a convgrad error (no adapter: the browser has no WebGPU, or it is disabled), or what
/// the callback threw.
#[wasm_bindgen]
pub async fn run(on_event: js_sys::Function) -> Result<JsValue, JsValue> {
    let ctx = Context::new_async().await.map_err(js_err)?;
    let info = ctx.adapter_info().clone();
    let start = js_sys::Date::now();
    let mut learning = FilterLearning::new(&ctx, LearnConfig::default()).await.map_err(js_err)?;
    let size = learning.config().filter_size;
    emit(
        &on_event,
        format!(
            "{{\"event\":\"start\",\"adapter\":{:?},\"backend\":{:?},\"profile\":{:?},\"names\":{},\"size\":{size},\"hidden\":{}}}",
            info.name,
            format!("{:?}", info.backend),
            ctx.profile().to_string(),
            list(FILTER_NAMES.iter().map(|n| format!("{n:?}"))),
            floats(learning.hidden().iter().copied())
        ),
    )
    .await?;
    let mut last;
    loop {
        let r = learning.reading(&ctx).await.map_err(js_err)?;
        let learned = learning.learned(&ctx).await.map_err(js_err)?;
        emit(&on_event, reading_json(&r, learned.as_slice().unwrap_or(&[]))).await?;
        let done = r.worst() < TARGET || learning.steps() >= MAX_STEPS;
        last = r;
        if done {
            break;
        }
        for _ in 0..LOG_EVERY {
            learning.step(&ctx).map_err(js_err)?;
        }
    }
    let seconds = (js_sys::Date::now() - start) / 1e3;
    let summary = format!(
        "{{\"event\":\"done\",\"recovered\":{},\"steps\":{},\"worst\":{:e},\"per_filter\":{},\"seconds\":{seconds:.3},\"adapter\":{:?}}}",
        last.worst() < TARGET,
        last.step,
        last.worst(),
        list(last.per_filter.iter().map(|e| format!("{e:e}"))),
        info.name
    );
    Ok(JsValue::from_str(&summary))
}
