#!/usr/bin/env bash
# Builds the page's wasm module into web/pkg: the convgrad-web crate for wasm32 in the size-tuned `web`
# profile, then wasm-bindgen's JavaScript glue (needs `rustup target add wasm32-unknown-unknown` and
# the wasm-bindgen-cli of the version in Cargo.lock; `bash .ci/setup-web` installs both, the CLI into
# target/ci/bin, which this script uses; WASM_BINDGEN=... names another).
set -euo pipefail
cd "$(dirname "$0")/.."
WASM_BINDGEN=${WASM_BINDGEN:-target/ci/bin/wasm-bindgen}
if [ ! -x "$WASM_BINDGEN" ]; then
  echo "web/build.sh: no wasm-bindgen at $WASM_BINDGEN: run 'bash .ci/setup-web' first (or set WASM_BINDGEN)" >&2
  exit 1
fi
cargo build -p convgrad-web --target wasm32-unknown-unknown --profile web
"$WASM_BINDGEN" --target web --no-typescript --out-dir web/pkg target/wasm32-unknown-unknown/web/convgrad_web.wasm
ls -l web/pkg/convgrad_web_bg.wasm | awk '{printf "web/pkg/convgrad_web_bg.wasm: %d bytes", $5}'
echo " ($(gzip -9 -c web/pkg/convgrad_web_bg.wasm | wc -c) gzipped)"
