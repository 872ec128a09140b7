#!/usr/bin/env bash
# Times a benchmark suite in headless Chromium's WebGPU and writes its JSON records:
#
#   bash web/bench.sh SUITE OUT.json [--ops forward,weight-grad,input-grad] [--reps 5] [--compare NATIVE.json]
#
# SUITE: tiny, quick, standard or gpu (as convgrad bench). Installs what it needs where missing
# (Debian's chromium and chromium-driver, the wasm32 target, wasm-bindgen-cli into target/ci/bin:
# .ci/setup-web), builds the page (web/build.sh), serves web/ on 127.0.0.1, and drives Chromium
# through WebDriver (web/bench.py: the standard library only). Fails, saying so, where the browser
# offers no WebGPU.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: bash web/bench.sh SUITE OUT.json [--ops LIST] [--reps N] [--compare NATIVE.json]" >&2
  exit 2
fi
bash .ci/setup-web
bash web/build.sh >&2
exec python3 web/bench.py "$@"
