// Drives the benchmark of the wasm module (built into pkg/ by web/build.sh): a table row and a bar per
// layer and op as they come, then the JSON records to download. The status element's data-state
// (idle, running, done, failed, no-webgpu) and data-result (the JSON) are what web/bench.py reads.
import init, { bench } from './pkg/convgrad_web.js';

const status = document.getElementById('status');
const setStatus = (state, text) => { status.dataset.state = state; status.textContent = text; };
const rows = [];

function drawChart() {
  const cv = document.getElementById('chart');
  const bar = 16, left = 330, width = cv.width - left - 90;
  cv.height = 20 + rows.length * (bar + 4);
  const g = cv.getContext('2d');
  g.fillStyle = '#fff'; g.fillRect(0, 0, cv.width, cv.height);
  const max = Math.max(1e-9, ...rows.map(r => r.gflops));
  const colours = { 'forward': '#1f77b4', 'weight-grad': '#ff7f0e', 'input-grad': '#2ca02c' };
  g.font = '12px sans-serif';
  rows.forEach((r, i) => {
    const y = 10 + i * (bar + 4);
    g.fillStyle = '#222'; g.fillText(`${r.shape} ${r.op}${r.kernels === 'cached' ? ' (tuned here)' : ''}`, 4, y + 12);
    g.fillStyle = colours[r.op] || '#888';
    g.globalAlpha = r.kernels === 'cached' ? 0.55 : 1; g.fillRect(left, y, width * r.gflops / max, bar);
    g.globalAlpha = 1; g.fillStyle = '#222'; g.fillText(`${r.gflops.toFixed(2)} GFLOP/s`, left + width * r.gflops / max + 4, y + 12);
  });
}

async function onEvent(json) {
  const ev = JSON.parse(json);
  if (ev.event === 'start') {
    const name = ev.adapter || 'the browser\'s WebGPU adapter (unnamed)';
    document.getElementById('adapter').textContent =
      `adapter: ${name} (${ev.backend}); plans: ${ev.profile}; timing: ${ev.timing}`;
  } else if (ev.event === 'row') {
    rows.push(ev);
    const tr = document.createElement('tr');
    const plans = ev.kernels === 'cached' ? 'tuned here' : 'planner';
    [ev.shape, ev.op, plans, ev.median_ms.toFixed(3), ev.gflops.toFixed(2), ev.plan].forEach(v => {
      const td = document.createElement('td'); td.textContent = v; tr.appendChild(td);
    });
    document.getElementById('rows').appendChild(tr);
    drawChart();
    setStatus('running', `${rows.length} timed: ${ev.shape} ${ev.op} ${ev.median_ms.toFixed(3)} ms`);
  } else if (ev.event === 'tune') {
    setStatus('running', `tuned ${ev.shape} ${ev.op} in ${ev.seconds.toFixed(1)} s: ${ev.candidates} candidates ` +
      `(${ev.out} out), pick ${ev.plan}`);
  } else if (ev.event === 'cache') {
    status.dataset.cache = ev.text;
    const link = document.getElementById('cache');
    link.href = URL.createObjectURL(new Blob([ev.text], { type: 'text/plain' }));
    link.hidden = false;
  }
  await new Promise(r => setTimeout(r, 0));
}

// The browser's name and version: the user-agent brands where the browser offers them.
function browserName() {
  const brands = navigator.userAgentData?.brands?.filter(b => !/Not.A.Brand/i.test(b.brand)) ?? [];
  const named = brands.find(b => /Chrom|Edge|Opera/.test(b.brand)) ?? brands[0];
  return named ? `${named.brand} ${named.version}; ${navigator.userAgent}` : navigator.userAgent;
}

async function start(suite, ops, reps, tune) {
  if (!navigator.gpu) {
    setStatus('no-webgpu', 'This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge or ' +
      'Firefox with WebGPU on; headless Chromium needs --enable-unsafe-webgpu.');
    return;
  }
  setStatus('running', `timing suite ${suite}…`);
  try {
    await init();
    const text = await bench(suite, ops, reps, browserName(), tune, onEvent);
    status.dataset.result = text;
    const link = document.getElementById('download');
    link.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    link.hidden = false;
    setStatus('done', `suite ${suite}: ${rows.length} layer ops timed`);
  } catch (e) {
    if (String(e).includes('no GPU adapter')) {
      setStatus('no-webgpu', 'This browser has WebGPU but gave this page no adapter (WebGPU may be disabled, ' +
        'or this GPU unsupported); headless Chromium needs --enable-unsafe-webgpu.');
    } else {
      setStatus('failed', `convgrad failed: ${e}`);
    }
  }
}

const params = new URLSearchParams(location.search);
document.getElementById('choice').addEventListener('submit', e => {
  e.preventDefault();
  const f = new FormData(e.target);
  location.search = new URLSearchParams({
    suite: f.get('suite'), ops: f.get('ops'), reps: f.get('reps'), tune: f.get('tune') ? 1 : 0,
  }).toString();
});
if (params.has('suite')) {
  await start(params.get('suite'), params.get('ops') || 'forward,weight-grad,input-grad', Number(params.get('reps') || 5),
    params.get('tune') === '1');
}
