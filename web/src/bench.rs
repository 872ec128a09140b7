//! The benchmark suites timed in the page (`bench.html`): the same layers, inputs, warm-up and
//! records as `convgrad bench`, with an asynchronous loop, since a page cannot block on the GPU.
//!
//! Each timed run is the operation and the read-back of its result, timed by the page's clock
//! (`performance.now()`) from the call to the read-back's completion: the wall clock, as the native
//! bench's `median_ms`. No device time: Chromium's WebGPU rounds timestamps to 100 µs, and its
//! SwiftShader adapter offers no `timestamp-query` at all.
//!
//! With tuning on, each layer and op is timed with the planner's plan (`Auto`, kernels `tuned` as in
//! `convgrad bench`), then tuned on this page's adapter ([`Context::tune_async`], the same candidates,
//! check and pick as `convgrad tune`), then timed again with the pick on a twin context over the same
//! device (kernels `cached`, as `convgrad bench --tuned`). The picks stay in memory and are offered as
//! a tuning-cache file.

use convgrad::bench::{Inputs, Op, Platform, Record, Timing, WALL_CLOCK, WARM_UP_RUNS, now_ms, records_json, suite};
use convgrad::{Context, Error, Tuning};
use ndarray::IxDyn;
use wasm_bindgen::prelude::*;

use crate::{emit, js_err};

/// One run: the operation, then its result read back. Returns (host, wall) milliseconds: the call's
/// own time, and the time to the end of the read-back.
async fn run_once(ctx: &Context, inputs: &Inputs, op: Op) -> Result<(f64, f64), Error> {
    let t0 = now_ms();
    let out = inputs.launch(ctx, op)?;
    let host = now_ms() - t0;
    let back = ctx.download_async::<IxDyn>(&out).await?;
    let wall = now_ms() - t0;
    drop(back);
    Ok((host, wall))
}

/// [`WARM_UP_RUNS`] untimed runs, then `reps` timed ones, as `convgrad::bench::time_op`.
async fn time_op(ctx: &Context, inputs: &Inputs, op: Op, reps: usize) -> Result<Timing, Error> {
    let g = &inputs.geo;
    let plan = match op {
        Op::Forward => ctx.plan_forward(g)?.to_string(),
        Op::WeightGrad => ctx.plan_weight_grad(g)?.to_string(),
        Op::InputGrad => ctx.plan_input_grad(g)?.to_string(),
    };
    let before = ctx.pipeline_stats();
    for _ in 0..WARM_UP_RUNS {
        run_once(ctx, inputs, op).await?;
    }
    let after = ctx.pipeline_stats();
    let (mut host_ms, mut wall_ms) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let (host, wall) = run_once(ctx, inputs, op).await?;
        host_ms.push(host);
        wall_ms.push(wall);
    }
    ctx.settle().await?;
    Ok(Timing {
        wall_ms,
        host_ms,
        device_ms: None,
        plan,
        pipelines_compiled: after.compiled - before.compiled,
        compile_ms: after.compile_ms - before.compile_ms,
    })
}

/// Times suite `suite_name` (tiny, quick, standard or gpu), the comma-separated `ops` (forward,
/// weight-grad, input-grad), `reps` timed runs each, on this page's WebGPU adapter; with `tune`, each
/// layer and op also tuned and timed with its pick. `browser` names the browser and its version for
/// the records. `on_event` gets JSON strings: first `{"event": "start", adapter, backend, profile,
/// timing, layers}`, then `{"event": "row", shape, op, kernels, median_ms, gflops, plan}` per layer,
/// op and kernels; with `tune`, a `{"event": "tune", shape, op, plan, candidates, out, seconds}`
/// before each tuned row and, last, `{"event": "cache", text}` (the picks as a tuning-cache file).
/// Returns the records as `convgrad bench --json` writes them.
///
/// # Errors
/// An unknown suite, op or a zero `reps`; convgrad's errors (no adapter: the browser has no WebGPU);
/// what the callback threw.
#[wasm_bindgen]
pub async fn bench(
    suite_name: String,
    ops: String,
    reps: usize,
    browser: String,
    tune: bool,
    on_event: js_sys::Function,
) -> Result<JsValue, JsValue> {
    let layers = suite(&suite_name).ok_or_else(|| {
        JsValue::from_str(&format!("unknown suite '{suite_name}'; choose tiny, quick, standard or gpu"))
    })?;
    let ops = ops
        .split(',')
        .map(|o| {
            Op::from_name(o.trim())
                .ok_or_else(|| JsValue::from_str(&format!("unknown op '{o}'; use forward, weight-grad or input-grad")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if reps == 0 {
        return Err(JsValue::from_str("reps must be at least 1"));
    }
    let ctx = Context::new_async().await.map_err(js_err)?;
    let mut platform = Platform::of(&ctx);
    platform.timing = WALL_CLOCK;
    platform.browser = Some(browser);
    let names: Vec<String> = layers.iter().map(|l| format!("{:?}", l.name)).collect();
    emit(
        &on_event,
        format!(
            "{{\"event\":\"start\",\"adapter\":{:?},\"backend\":{:?},\"profile\":{:?},\"timing\":{:?},\"layers\":[{}]}}",
            platform.adapter,
            platform.backend,
            platform.profile,
            platform.timing,
            names.join(",")
        ),
    )
    .await?;
    // The tuned plans run on a twin of the context (same device, its own tuner), so the `Auto`
    // rows never see a pick.
    let tuned = tune.then(|| ctx.twin().with_tuning(Tuning::Cached).with_tune_cache(None));
    let mut records = Vec::new();
    for layer in &layers {
        let inputs = Inputs::new(&ctx, layer.geo).map_err(js_err)?;
        for &op in &ops {
            let t = time_op(&ctx, &inputs, op, reps).await.map_err(js_err)?;
            records.push(row(&on_event, layer.name, &layer.geo, op, "tuned", &t).await?);
            let Some(tc) = &tuned else { continue };
            let t0 = now_ms();
            let report = tc.tune_async(op, &layer.geo).await.map_err(js_err)?;
            let out = report.candidates.iter().filter(|c| c.out.is_some()).count();
            emit(
                &on_event,
                format!(
                    "{{\"event\":\"tune\",\"shape\":{:?},\"op\":{:?},\"plan\":{:?},\"candidates\":{},\"out\":{out},\"seconds\":{:.3}}}",
                    layer.name,
                    op.name(),
                    report.candidates[report.pick].plan,
                    report.candidates.len(),
                    (now_ms() - t0) / 1e3
                ),
            )
            .await?;
            let t = time_op(tc, &inputs.on(tc).map_err(js_err)?, op, reps).await.map_err(js_err)?;
            records.push(row(&on_event, layer.name, &layer.geo, op, "cached", &t).await?);
        }
    }
    if let Some(tc) = &tuned {
        emit(&on_event, format!("{{\"event\":\"cache\",\"text\":{:?}}}", tc.export_tuning())).await?;
    }
    Ok(JsValue::from_str(&records_json(&records, &platform)))
}

/// The record of one timing, sent to the page as a `row` event.
async fn row(
    on_event: &js_sys::Function,
    name: &str,
    geo: &convgrad::Conv2dGeometry,
    op: Op,
    kernels: &'static str,
    t: &Timing,
) -> Result<Record, JsValue> {
    let r = Record::new(name, geo, op, kernels, t);
    emit(
        on_event,
        format!(
            "{{\"event\":\"row\",\"shape\":{:?},\"op\":{:?},\"kernels\":{:?},\"median_ms\":{},\"gflops\":{},\"plan\":{:?}}}",
            r.shape,
            op.name(),
            kernels,
            r.median_ms,
            r.gflops,
            r.plan
        ),
    )
    .await?;
    Ok(r)
}

/// The layers of suite `name` as JSON, for a page that times another library on the same layers
/// (`web/tfjs/compare.js`): `[{name, n, c, h, w, k, s, t, stride: [sh, sw], pad: [top, bottom, left,
/// right], dilation: [dh, dw], groups, p, q}]`.
///
/// # Errors
/// An unknown suite.
#[wasm_bindgen]
pub fn suite_layers(name: String) -> Result<String, JsValue> {
    let layers = suite(&name)
        .ok_or_else(|| JsValue::from_str(&format!("unknown suite '{name}'; choose tiny, quick, standard or gpu")))?;
    let rows: Vec<String> = layers
        .iter()
        .map(|l| {
            let g = &l.geo;
            let pr = &g.params;
            format!(
                "{{\"name\":{:?},\"n\":{},\"c\":{},\"h\":{},\"w\":{},\"k\":{},\"s\":{},\"t\":{},\"stride\":[{},{}],\"pad\":[{},{},{},{}],\"dilation\":[{},{}],\"groups\":{},\"p\":{},\"q\":{}}}",
                l.name,
                g.n,
                g.c,
                g.h,
                g.w,
                g.k,
                g.s,
                g.t,
                pr.stride[0],
                pr.stride[1],
                g.pad.top,
                g.pad.bottom,
                g.pad.left,
                g.pad.right,
                pr.dilation[0],
                pr.dilation[1],
                pr.groups,
                g.p,
                g.q
            )
        })
        .collect();
    Ok(format!("[{}]", rows.join(",")))
}
