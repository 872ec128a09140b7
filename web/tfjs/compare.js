// Times TF.js 4.22 (WebGPU backend) on the layers of a convgrad suite, as bench.js times convgrad: the
// layers come from the convgrad module (suite_layers), the records have the fields web/bench.py checks
// that this comparison needs (shape, op, median_ms, min_ms, max_ms, gflops, plan). TF.js works in NHWC
// with HWIO filters; the forward pass is tf.conv2d, the input gradient tf.conv2dTranspose, and the
// weight gradient the filter's gradient of tf.conv2d (tf.grad computes only the input it is asked for).
import init, { suite_layers } from '../pkg/convgrad_web.js';

const status = document.getElementById('status');
const setStatus = (state, text) => { status.dataset.state = state; status.textContent = text; };
const median = v => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function time(run, reps) {
  for (let i = 0; i < 3; i++) { const y = run(); await y.data(); y.dispose(); }
  const wall = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const y = run();
    await y.data();
    wall.push(performance.now() - t0);
    y.dispose();
  }
  return wall;
}

async function main(suite, ops, reps) {
  await init();
  const layers = JSON.parse(suite_layers(suite));
  if (!(await tf.setBackend('webgpu'))) throw new Error('TF.js could not start its WebGPU backend');
  await tf.ready();
  document.getElementById('adapter').textContent = `TF.js ${tf.version.tfjs}, backend ${tf.getBackend()}`;
  const records = [];
  for (const l of layers) {
    if (l.groups !== 1 || l.dilation[0] !== 1 || l.dilation[1] !== 1) throw new Error(`${l.name}: not a plain layer`);
    const pad = [[0, 0], [l.pad[0], l.pad[1]], [l.pad[2], l.pad[3]], [0, 0]];
    const x = tf.randomNormal([l.n, l.h, l.w, l.c]);
    const f = tf.randomNormal([l.s, l.t, l.c, l.k]);
    const dy = tf.randomNormal([l.n, l.p, l.q, l.k]);
    const stride = l.stride;
    // conv2dTranspose takes 'same', 'valid' or one number: the layers' paddings are symmetric.
    const tpad = l.pad.every(p => p === l.pad[0]) ? l.pad[0] : 'same';
    const runs = {
      'forward': () => tf.conv2d(x, f, stride, pad),
      'weight-grad': () => tf.grad(ff => tf.conv2d(x, ff, stride, pad))(f, dy),
      'input-grad': () => tf.conv2dTranspose(dy, f, [l.n, l.h, l.w, l.c], stride, tpad),
    };
    const flops = 2 * l.n * l.k * l.p * l.q * l.c * l.s * l.t;
    for (const op of ops) {
      const wall = await time(runs[op], reps);
      const m = median(wall);
      const r = { shape: l.name, op, median_ms: m, min_ms: Math.min(...wall), max_ms: Math.max(...wall),
        gflops: flops / (m * 1e-3) / 1e9, plan: `tfjs ${tf.getBackend()}` };
      records.push(r);
      document.getElementById('rows').textContent += `${l.name} ${op} ${m.toFixed(3)} ms\n`;
      setStatus('running', `${records.length} timed`);
    }
    tf.dispose([x, f, dy]);
  }
  status.dataset.result = JSON.stringify(records);
  setStatus('done', `${records.length} layer ops timed`);
}

const params = new URLSearchParams(location.search);
if (params.has('suite')) {
  try {
    await main(params.get('suite'), (params.get('ops') || 'forward,weight-grad,input-grad').split(','),
      Number(params.get('reps') || 5));
  } catch (e) {
    setStatus('failed', `failed: ${e}`);
  }
}
