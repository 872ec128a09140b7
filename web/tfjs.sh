#!/usr/bin/env bash
# Times TF.js 4.22 with its WebGPU backend on the layers of a convgrad suite in headless Chromium, then
# convgrad's page on the same suite right after, and prints them side by side:
#
#   bash web/tfjs.sh SUITE [REPS]
#
# TF.js comes from the npm registry as its users install it (npm ci-like install into
# web/tfjs/node_modules, pinned by web/tfjs/package.json); the rest as web/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:?usage: bash web/tfjs.sh SUITE [REPS]}
reps=${2:-5}
command -v npm >/dev/null || { echo "web/tfjs.sh: needs Node.js and npm (apt-get install -y nodejs npm)" >&2; exit 1; }
if [ ! -f web/tfjs/node_modules/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js ]; then
  (cd web/tfjs && npm install --no-audit --no-fund --silent) || { echo "web/tfjs.sh: npm install failed" >&2; exit 1; }
fi
bash .ci/setup-web
bash web/build.sh >&2
out=$(mktemp -d)
python3 web/compare.py "$suite" "$reps" "$out"
