#!/usr/bin/env bash
# Builds the page and serves it on http://127.0.0.1:8000/ (PORT=... to change); open that in a browser
# with WebGPU (the README says which were tried). Ctrl-C stops the server.
set -euo pipefail
cd "$(dirname "$0")"
bash build.sh
echo "serving http://127.0.0.1:${PORT:-8000}/"
exec python3 -m http.server "${PORT:-8000}" --bind 127.0.0.1
