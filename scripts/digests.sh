#!/usr/bin/env bash
# The bits of every op, before and after a change that must not change them: `convgrad bench --repeats`
# over the standard suite, f32/f16/bf16, NCHW and NHWC, the forward pass with a bias and the bias
# gradient included, on lavapipe and SwiftShader under both profiles. Prints one line per
# (driver, profile, layer, op, dtype): its digest. Run it on two builds and diff the outputs.
#   bash scripts/digests.sh [path/to/convgrad] > digests.txt
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/convgrad}
LAVAPIPE=$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json | head -1)
SWIFTSHADER=/usr/lib/chromium/vk_swiftshader_icd.json
export WGPU_BACKEND=vulkan
for driver in lavapipe swiftshader; do
  icd=$LAVAPIPE; [ "$driver" = swiftshader ] && icd=$SWIFTSHADER
  for profile in cpu gpu; do
    VK_ICD_FILENAMES=$icd CONVGRAD_PROFILE=$profile "$BIN" bench --suite standard --repeats 2 --dtype all --layout both |
      awk -v d="$driver" -v p="$profile" '/ bits / { print d, p, $0 }'
  done
done
