#!/usr/bin/env bash
# Run on the development machine before a GPU run: fills .carry/ (git-ignored), which the run carries.
#   .carry/node.xz      this machine's node (../shared/tools/pack-node-for-device.sh), for the addon stage
#   .carry/napi/        N-API headers (node-api-headers, node-addon-api) so the addon builds there without npm
#   .carry/hfref/       tiny models + our CPU engine's logits/generations (tests/native/reference/makeReference.ts)
#   .carry/hf-fixture/  tokenizer folders + our expected ids (tests/main/tokenizer/python/writeHfFixture.ts)
# Then, with the device tool: run `bash native/gpu/run_all.sh` with carry [".carry"].
set -euo pipefail
cd "$(dirname "$0")/../.."
bash ../shared/tools/pack-node-for-device.sh
rm -rf .carry/napi
mkdir -p .carry/napi/node-api-headers .carry/napi/node-addon-api
cp -r node_modules/node-api-headers/include .carry/napi/node-api-headers/
cp node_modules/node-addon-api/*.h .carry/napi/node-addon-api/
npm run build:native >/dev/null   # the CPU engine writes the reference outputs
npx tsx tests/native/reference/makeReference.ts .carry/hfref
npx tsx tests/main/tokenizer/python/writeHfFixture.ts .carry/hf-fixture
du -sh .carry/* .carry
size=$(du -sm .carry | cut -f1)
if [ "$size" -ge 60 ]; then echo "WARNING: .carry is ${size} MiB; the run carries at most 64 MiB with the working tree"; exit 1; fi
echo "ready: carry [\".carry\"] with the run command bash native/gpu/run_all.sh"
