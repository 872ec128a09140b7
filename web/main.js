// Drives the wasm module (built into pkg/ by web/build.sh) and draws what it reports. The status
// element's data-state (running, done, failed, no-webgpu) and data-result are what web/check.py reads.
import init, { run } from './pkg/convgrad_web.js';

const status = document.getElementById('status');
const setStatus = (state, text) => { status.dataset.state = state; status.textContent = text; };

let names = [], size = 0, hidden = [];
const history = [];

// One diverging colour per value: blue below zero, red above, white at zero, scaled per filter.
function cellColour(v) {
  const t = Math.max(-1, Math.min(1, v));
  const c = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? `rgb(255,${c},${c})` : `rgb(${c},${c},255)`;
}

function drawFilters(learned) {
  const cv = document.getElementById('filters'), g = cv.getContext('2d');
  g.fillStyle = '#fff'; g.fillRect(0, 0, cv.width, cv.height);
  const cell = 22, pad = 16, panel = cell * size;
  names.forEach((name, k) => {
    const x0 = pad + k * (panel + pad);
    const per = size * size, h = hidden.slice(k * per, (k + 1) * per);
    const scale = Math.max(1e-6, ...h.map(Math.abs));
    g.fillStyle = '#222'; g.font = '13px sans-serif'; g.fillText(name, x0, 14);
    [h, learned.slice(k * per, (k + 1) * per)].forEach((bank, row) => {
      const y0 = 24 + row * (panel + pad);
      bank.forEach((v, e) => {
        g.fillStyle = cellColour(v / scale);
        g.fillRect(x0 + (e % size) * cell, y0 + Math.floor(e / size) * cell, cell, cell);
      });
    });
  });
}

function drawCurve() {
  const cv = document.getElementById('loss'), g = cv.getContext('2d');
  g.fillStyle = '#fff'; g.fillRect(0, 0, cv.width, cv.height);
  const left = 56, right = cv.width - 12, top = 12, bottom = cv.height - 28;
  const vals = history.flatMap(r => [r.loss, r.err]).filter(v => v > 0);
  const lo = Math.log10(Math.min(...vals)) - 0.2, hi = Math.log10(Math.max(...vals)) + 0.2;
  const last = Math.max(1, history[history.length - 1].step);
  const X = s => left + (right - left) * s / last;
  const Y = v => bottom - (bottom - top) * (Math.log10(Math.max(v, 1e-30)) - lo) / (hi - lo);
  g.strokeStyle = '#999'; g.strokeRect(left, top, right - left, bottom - top);
  g.fillStyle = '#444'; g.font = '11px sans-serif';
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) { g.fillText(`1e${e}`, 8, Y(10 ** e) + 4); }
  g.fillText('0', left, bottom + 16); g.fillText(`${last} steps`, right - 60, bottom + 16);
  [['loss', '#d62728'], ['err', '#1f77b4']].forEach(([key, colour]) => {
    g.strokeStyle = colour; g.lineWidth = 2; g.beginPath();
    history.forEach((r, i) => (i ? g.lineTo : g.moveTo).call(g, X(r.step), Y(r[key])));
    g.stroke();
  });
}

function drawErrors(perFilter) {
  const rows = names.map((n, k) => `<tr><td>${n}</td><td>${perFilter[k].toExponential(2)}</td></tr>`);
  document.getElementById('errors').innerHTML = '<tr><th>filter</th><th>relative error</th></tr>' + rows.join('');
}

async function onEvent(json) {
  const ev = JSON.parse(json);
  if (ev.event === 'start') {
    ({ names, size, hidden } = ev);
    // Browsers may withhold the GPU's name from pages (WebGPU's adapter info is privacy-filtered).
    const name = ev.adapter || 'the browser\'s WebGPU adapter (unnamed)';
    document.getElementById('adapter').textContent = `adapter: ${name} (${ev.backend}); plans: ${ev.profile}`;
  } else if (ev.event === 'reading') {
    history.push(ev);
    drawFilters(ev.learned);
    drawCurve();
    drawErrors(ev.per_filter);
    setStatus('running', `step ${ev.step}: loss ${ev.loss.toExponential(3)}, worst filter error ${ev.worst.toExponential(2)}`);
  }
  // Let the page repaint before the next steps.
  await new Promise(r => setTimeout(r, 0));
}

if (!navigator.gpu) {
  setStatus('no-webgpu', 'This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge or ' +
    'Firefox with WebGPU on; headless Chromium needs --enable-unsafe-webgpu.');
} else {
  try {
    await init();
    const summary = JSON.parse(await run(onEvent));
    status.dataset.result = JSON.stringify(summary);
    setStatus(summary.recovered ? 'done' : 'failed',
      `${summary.recovered ? 'recovered every filter' : 'did NOT reach the target'} after ${summary.steps} steps ` +
      `in ${summary.seconds.toFixed(1)} s (worst relative error ${summary.worst.toExponential(2)})`);
  } catch (e) {
    // navigator.gpu without an adapter: WebGPU is present but off, blocklisted or unsupported here.
    if (String(e).includes('no GPU adapter')) {
      setStatus('no-webgpu', 'This browser has WebGPU but gave this page no adapter (WebGPU may be disabled, ' +
        'or this GPU unsupported); headless Chromium needs --enable-unsafe-webgpu.');
    } else {
      setStatus('failed', `convgrad failed: ${e}`);
    }
  }
}
