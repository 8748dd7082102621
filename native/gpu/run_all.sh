#!/usr/bin/env bash
# The GPU run (issues 5 and 6), one robust script for the lent H100/H200 machine: builds the engine with its
# CUDA backend, runs every check (continuing past failures), benchmarks against PyTorch, and ends with a
# compact summary. Also `npm run test:gpu` (all but the benchmark) and `npm run bench:gpu` (the benchmark).
#
#   bash native/gpu/run_all.sh
#
# Stages (QT_STAGES, comma-separated; default all, in this order):
#   info    the machine: GPU, driver, toolkit, python packages
#   build   cmake + build (sm_90 unless QT_CUDA_ARCHS): engine + CUDA backend, engine_tests, native/gpu programs,
#           and the Node addon when .carry/napi holds the N-API headers (prepare_carry.sh puts them there)
#   tests   engine_tests from the CUDA build: the CPU suite plus backend_ops_cuda_matches_cpu (the conformance runner)
#   addon   the addon under the carried node: backends()/devices() report cuda, a model runs on cuda:0
#   check   gpu_check: every CUDA op vs the CPU op, NF4 bit-exactness, tiny models, training, resume, OOM
#   hf      hf_compare.py + gpu_hf: our engine vs transformers + peft on a 2-layer Llama-3-8B-shaped model (counted:
#           each of our modes vs HF fp32 on the same base; ours vs HF bf16 and HF bf16 vs HF fp32 printed as information)
#   hfref   tests/native/reference/check_hf.py on .carry/hfref (the CPU engine's outputs vs transformers)
#   tok     tests/main/tokenizer/python/check_hf_tokenizers.py on .carry/hf-fixture
#   bench   bench_torch.py (writes the random 8B checkpoint once, measures PyTorch + peft) + gpu_bench (ours)
# Other settings: OUT (results folder; the device run sets it), QT_BUILD_DIR (default native/build/gpu, kept
# between calls on a warm machine), QT_DEADLINE (seconds; stages that would not fit are skipped and listed,
# default 560), QT_BENCH_MODEL (default /tmp/qt-bench/llama3-8b), QT_BENCH_SIZES, QT_BENCH_STEPS, QT_CUDA_ARCHS.
# Results under $OUT (at most 8 files): run_all.log, build.log, sass.txt, gpu_check.json, hf_compare.json, bench.json,
# summary.json.
# Fast paths (issue 6), each switchable without rebuilding (defaults first): QT_CUDA_ATTN=tc16|tc|simt, QT_CUDA_ATTN_DS=1|0,
# QT_CUDA_GEMV=7|6|4|3|1|0 (QT_CUDA_GEMV_ROWS=1|2 forces gemv 4, 6 or 7's rows per warp), QT_CUDA_DEQUANT=auto|vec2|vec|simple, QT_CUDA_LORA=tf32|cublas|fused, QT_CUDA_XCACHE=1|0,
# QT_CUDA_DECODE=1|0, QT_CUDA_PDL=1|0, QT_CKPT_BF16=1|0 (unset: bf16 checkpoints for bf16/fp16 compute), QT_MLP_BF16=0 (fp32 MLP intermediates), QT_DEQUANT_REUSE=1|0 (unset: auto,
# on for batches of <= 4096 rows with memory to spare). gpu_check tests the old and the new path of each op itself; a path whose checks fail is switched off (or back
# to its run-2 version) for the later stages and the next call on the same machine ($BUILD/fallback.env, rewritten by
# every check stage; QT_NO_FALLBACK=1 ignores it); the bench prints which paths were active.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${OUT:-/tmp/qt-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run_all.log") 2>&1
STAGES=${QT_STAGES:-info,build,tests,addon,check,hf,hfref,tok,bench}
BUILD=${QT_BUILD_DIR:-$ROOT/native/build/gpu}
DEADLINE=${QT_DEADLINE:-560}
BENCH_MODEL=${QT_BENCH_MODEL:-/tmp/qt-bench/llama3-8b}
WORK=/tmp/qt-gpu-work
mkdir -p "$WORK"
export PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
START=$SECONDS
SUMMARY=()

ts() { date +%H:%M:%S; }
want() { [[ ",$STAGES," == *",$1,"* ]]; }
left() { echo $((DEADLINE - (SECONDS - START))); }

# stage NAME ESTIMATE_SECONDS FUNCTION: runs it when selected and when it fits the time left
stage() {
  local name=$1 est=$2 fn=$3
  want "$name" || return 0
  if (($(left) < est)); then
    echo "==== [$(ts)] stage $name SKIPPED: needs ~${est}s, $(left)s left (run it again with QT_STAGES=$name)"
    SUMMARY+=("$name|skipped|0|needs ~${est}s")
    return 0
  fi
  echo "==== [$(ts)] stage $name (t+$((SECONDS - START))s, $(left)s left)"
  local t0=$SECONDS
  NOTE=""
  "$fn"
  local rc=$?
  echo "==== [$(ts)] stage $name: $([ $rc = 0 ] && echo OK || echo "FAILED rc=$rc") in $((SECONDS - t0))s"
  SUMMARY+=("$name|$([ $rc = 0 ] && echo ok || echo "FAIL($rc)")|$((SECONDS - t0))|$NOTE")
}

# run a command with the remaining time as its limit (a hung step cannot eat the summary)
limited() { timeout --kill-after=10 "$(($(left) > 20 ? $(left) - 10 : 10))" "$@"; }

find_nvcc() {
  command -v nvcc >/dev/null 2>&1 && return 0
  for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin /usr/local/cuda-13/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; return 0; fi
  done
  return 1
}

s_info() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1
  find_nvcc && nvcc --version | tail -2
  cmake --version | head -1
  echo "cores $(nproc); $(free -g | awk '/Mem:/{print $2" GiB RAM"}'); disk $(df -h /tmp | awk 'NR==2{print $4" free"}')"
  python3 - <<'EOF'
import importlib
for m in ("torch", "transformers", "peft", "safetensors", "numpy", "tokenizers"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:
        print(m, "MISSING", e)
import torch
print("cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
EOF
  ls /usr/local/cuda/lib64 2>/dev/null | grep -E "cublas" | head -4
  NOTE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  return 0
}

s_build() {
  find_nvcc || { echo "nvcc not found"; return 1; }
  local gen=() extra=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  if [ -d .carry/napi/node-api-headers/include ] && [ -d .carry/napi/node-addon-api ]; then
    extra+=("-DCMAKE_JS_INC=$ROOT/.carry/napi/node-api-headers/include" "-DQT_NAPI_INC=$ROOT/.carry/napi/node-addon-api")
  fi
  # cuBLAS from pip (nvidia-cublas) when the toolkit folder has none
  if ! ls "$(dirname "$(dirname "$(command -v nvcc)")")"/lib64/libcublas.so* >/dev/null 2>&1; then
    local pip_cublas
    pip_cublas=$(python3 -c "import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))" 2>/dev/null || true)
    if [ -n "$pip_cublas" ] && [ -f "$pip_cublas/include/cublas_v2.h" ]; then
      local lib=$(ls "$pip_cublas"/lib/libcublas.so* | head -1) lt=$(ls "$pip_cublas"/lib/libcublasLt.so* | head -1)
      echo "using pip's cuBLAS at $pip_cublas"
      extra+=("-DCUDA_cublas_LIBRARY=$lib" "-DCUDA_cublasLt_LIBRARY=$lt" "-DQT_CUBLAS_HEADER=$pip_cublas/include/cublas_v2.h"
              "-DCMAKE_CUDA_FLAGS=-I$pip_cublas/include")
      export LD_LIBRARY_PATH="$pip_cublas/lib:${LD_LIBRARY_PATH:-}"
    fi
  fi
  echo "build dir $BUILD; log in build.log"
  limited cmake -S native -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${QT_CUDA_ARCHS:-90}" \
    -DQT_BUILD_GPU_TOOLS=ON "${extra[@]}" >"$OUT/build.log" 2>&1
  local rc=$?
  grep -E "qatuner:|CUDA compiler|Found CUDAToolkit" "$OUT/build.log"
  if [ $rc != 0 ]; then tail -30 "$OUT/build.log"; return $rc; fi
  grep -q "CUDA backend: full" "$OUT/build.log" || { echo "the CUDA backend was not configured (see build.log)"; return 1; }
  limited cmake --build "$BUILD" -j "$(nproc)" >>"$OUT/build.log" 2>&1
  rc=$?
  if [ $rc != 0 ]; then grep -E "error|Error" "$OUT/build.log" | head -40; tail -20 "$OUT/build.log"; return $rc; fi
  grep -ciE "warning" "$OUT/build.log" | sed 's/^/compiler warnings: /'
  ls -la "$BUILD/gpu/gpu_check" "$BUILD/gpu/gpu_bench" "$BUILD/gpu/gpu_hf" "$BUILD/tests/engine_tests" 2>&1
  ls "$BUILD"/addon/*.node 2>/dev/null
  sass_report
  return 0
}

# The fast kernels' machine code (no GPU time): HMMA (tensor-core) instructions in the attention kernels, 16-byte
# global loads/stores in the NF4 kernels, and any local-memory traffic (spills) in them. Written to sass.txt.
sass_report() {
  command -v cuobjdump >/dev/null 2>&1 || { echo "no cuobjdump: SASS report skipped"; return 0; }
  local lib
  lib=$(find "$BUILD" -name "libqt_engine.a" | head -1)
  [ -n "$lib" ] || return 0
  cuobjdump -sass "$lib" 2>/dev/null | awk '
    /Function : / { f = $3 }
    f ~ /tc_kernel|nf4_gemv|nf4_dequant|attn_decode|rmsnorm_rows/ {
      if ($0 ~ /HMMA/) h[f]++
      if ($0 ~ /LDG\.E\.128|STG\.E\.128|LDG\.E\.ENL2\.128|LDG\.E\.128\.CONSTANT/) v[f]++
      if ($0 ~ /[^A-Z](LDL|STL)[^A-Z]/) l[f]++
      seen[f] = 1
    }
    END { for (k in seen) printf "%-90s HMMA %4d  16B-global %4d  local %d\n", substr(k, 1, 90), h[k], v[k], l[k] }' | sort >"$OUT/sass.txt"
  echo "SASS of the fast kernels (sass.txt):"
  cat "$OUT/sass.txt"
}

ensure_built() { [ -x "$BUILD/gpu/gpu_check" ] || { echo "no build at $BUILD: building first"; s_build; }; }

s_tests() {
  ensure_built || return 1
  limited "$BUILD/tests/engine_tests" >"$WORK/cpu.log" 2>&1
  local rc=$?
  grep -E "^FAIL" -A2 "$WORK/cpu.log"
  tail -1 "$WORK/cpu.log"
  NOTE=$(tail -1 "$WORK/cpu.log")
  return $rc
}

s_addon() {
  ensure_built || return 1
  local node=/tmp/node addon
  addon=$(ls "$BUILD"/addon/*.node 2>/dev/null | head -1)
  [ -n "$addon" ] || { echo "the addon was not built (no .carry/napi headers?)"; NOTE="not built"; return 1; }
  if [ ! -x $node ]; then
    [ -f .carry/node.xz ] || { echo "no .carry/node.xz"; return 1; }
    xz -dc .carry/node.xz >$node && chmod +x $node
  fi
  local tiny=""
  [ -d .carry/hfref/llama/model ] && tiny=.carry/hfref/llama/model
  limited $node native/gpu/addon_smoke.cjs "$addon" $tiny
}

s_check() {
  ensure_built || return 1
  rm -f "$OUT/gpu_check.json"
  # its own time limit (run 2: 6 s), so a hung kernel cannot eat the benchmark's time; stdout also to check.out
  # (the fallback reads the FAIL lines there when the program died before writing its JSON)
  timeout --kill-after=10 "$(($(left) > 190 ? 180 : ($(left) > 20 ? $(left) - 10 : 10)))" \
    "$BUILD/gpu/gpu_check" --json "$OUT/gpu_check.json" | tee "$WORK/check.out"
  local rc=${PIPESTATUS[0]}
  NOTE=$(python3 -c "import json; d=json.load(open('$OUT/gpu_check.json')); print(f\"{d['passed']} passed, {d['failed']} failed\")" 2>/dev/null)
  [ -f "$OUT/gpu_check.json" ] || NOTE="gpu_check ended (rc $rc) without its JSON"
  fast_path_fallback
  return $rc
}

# A fast path whose own gpu_check comparisons failed is switched off for the later stages (and the next call on this
# machine: $BUILD/fallback.env), so the benchmark measures only paths that passed; it says so. The first check that
# hit a CUDA error names the culprit (later checks in that process fail after a sticky error and are not counted).
# Where a path has an older version, a failed new version falls back to it (QT_CUDA_GEMV=7 -> 6, 6 -> 4, 4 -> 3, 3 -> 1, QT_CUDA_DEQUANT=auto
# or vec2 -> vec, QT_CUDA_ATTN=tc16 -> tc, QT_CUDA_LORA=tf32 -> cublas, fused -> tf32), a failed old one
# to off (-> 0). If gpu_check died before writing its JSON, the FAIL lines it printed are read instead, and run 3's
# new paths are switched off whatever they say (they are the likeliest culprits of a crash or a hang).
fast_path_fallback() {
  python3 - "$OUT/gpu_check.json" "$WORK/check.out" >"$BUILD/fallback.env" <<'PYEOF'
import json, os, re, sys
# (variable, value, name fragments); for one variable the lowest value triggered wins (0 = off)
tags = [("QT_CUDA_ATTN", "tc", ("[fp16 tc16]",)), ("QT_CUDA_ATTN", "simt", ("[bf16 tc]",)),
        ("QT_CUDA_GEMV", "6", ("[gemv7]",)), ("QT_CUDA_GEMV", "4", ("[gemv6]",)), ("QT_CUDA_GEMV", "3", ("[gemv4]",)), ("QT_CUDA_GEMV", "1", ("[gemv3]",)), ("QT_CUDA_GEMV", "0", ("[gemv]",)),
        ("QT_CUDA_DEQUANT", "vec", ("[vec2]", "[auto]")), ("QT_CUDA_DEQUANT", "simple", ("[vec]",)), ("QT_CUDA_LORA", "tf32", ("[fused]",)), ("QT_CUDA_LORA", "cublas", ("[tf32", "lora tf32")), ("QT_CUDA_XCACHE", "0", ("xcache",)),
        ("QT_CUDA_DECODE", "0", ("[decode]",)), ("QT_CUDA_PDL", "0", ("[pdl]",)), ("QT_DEQUANT_REUSE", "0", ("[reuse]",))]
results = []
died = not os.path.exists(sys.argv[1])
if not died:
    results = [(r["name"], r["pass"], r.get("detail", "")) for r in json.load(open(sys.argv[1])).get("results", [])]
elif os.path.exists(sys.argv[2]):  # "FAIL group name ..." lines as printed
    for line in open(sys.argv[2], errors="replace"):
        m = re.match(r"^(PASS|FAIL) +\S+ +(.*)$", line.rstrip())
        if m:
            results.append((m.group(2), m.group(1) == "PASS", line))
off, sticky = {}, False
if died:
    off.update({"QT_CUDA_PDL": "0", "QT_CUDA_GEMV": "1", "QT_CUDA_DECODE": "0", "QT_DEQUANT_REUSE": "0", "QT_CUDA_DEQUANT": "vec", "QT_CUDA_ATTN": "tc"})
for name, ok, detail in results:
    if ok or sticky:
        continue
    for env, val, keys in tags:
        if any(k in name for k in keys):
            off[env] = min(off.get(env, val), val)
    sticky = sticky or "CUDA error" in detail
for env in sorted(off):
    print(f"export {env}={off[env]}")
PYEOF
  if [ -s "$BUILD/fallback.env" ]; then
    echo "FAST PATHS SWITCHED OFF after failed checks (also for the next call on this machine): $(grep -o 'QT_[A-Z_]*=[a-z0-9]*' "$BUILD/fallback.env" | tr '\n' ' ')"
    . "$BUILD/fallback.env"
    NOTE="$NOTE; switched off: $(grep -o 'QT_[A-Z_]*=[a-z0-9]*' "$BUILD/fallback.env" | tr '\n' ' ')"
  fi
}

s_hf() {
  ensure_built || return 1
  local d=$WORK/hf
  limited python3 native/gpu/hf_compare.py prepare "$d" || return 1
  limited "$BUILD/gpu/gpu_hf" "$d"
  local rc1=$?
  limited python3 native/gpu/hf_compare.py compare "$d" --json "$OUT/hf_compare.json"
  local rc2=$?
  NOTE=$(python3 -c "
import json; d=json.load(open('$OUT/hf_compare.json'))
print('; '.join(f\"{r['mode']}: logits {r.get('logits_rel_l2', float('nan')):.1e} dloss {r.get('dloss', float('nan')):.1e} cos {r.get('grad_cos_min', float('nan')):.4f}\" for r in d['results'] if r.get('counted') or r['mode'] in ('hf-bf16', 'bf16~hfbf16')))" 2>/dev/null)
  rm -rf "$d"
  return $((rc1 + rc2))
}

s_hfref() {
  [ -d .carry/hfref ] || { echo "no .carry/hfref (run native/gpu/prepare_carry.sh here first)"; return 1; }
  limited python3 tests/native/reference/check_hf.py .carry/hfref
}

s_tok() {
  [ -d .carry/hf-fixture ] || { echo "no .carry/hf-fixture (run native/gpu/prepare_carry.sh here first)"; return 1; }
  limited python3 tests/main/tokenizer/python/check_hf_tokenizers.py .carry/hf-fixture
}

s_bench() {
  ensure_built || return 1
  if [ -s "$BUILD/fallback.env" ] && [ "${QT_NO_FALLBACK:-0}" != 1 ]; then
    . "$BUILD/fallback.env"
    echo "bench with fast paths switched off by the last check: $(grep -o 'QT_[A-Z_]*=[a-z0-9]*' "$BUILD/fallback.env" | tr '\n' ' ')"
  fi
  local sizes=${QT_BENCH_SIZES:-4x128,4x512,8x1024} steps=${QT_BENCH_STEPS:-5}
  limited python3 native/gpu/bench_torch.py --model-dir "$BENCH_MODEL" --lengths "$WORK/lengths.json" --json "$WORK/torch.json" \
    --sizes "$sizes" --steps "$steps" --warmup 2
  local rc1=$?
  [ -f "$BENCH_MODEL/.complete" ] || { echo "no 8B checkpoint was written"; return 1; }
  limited "$BUILD/gpu/gpu_bench" --model "$BENCH_MODEL" --lengths "$WORK/lengths.json" --json "$WORK/ours.json" \
    --sizes "$sizes" --steps "$steps" --warmup 2
  local rc2=$?
  python3 native/gpu/bench_report.py "$WORK/ours.json" "$WORK/torch.json" "$OUT/bench.json" | tee "$WORK/bench_table.txt"
  return $((rc1 + rc2))
}

echo "==== [$(ts)] QA Tuner GPU run: stages $STAGES; deadline ${DEADLINE}s; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
stage info 5 s_info
stage build 60 s_build
stage tests 20 s_tests
stage addon 10 s_addon
stage check 60 s_check
stage hf 90 s_hf
stage hfref 30 s_hfref
stage tok 20 s_tok
stage bench 180 s_bench

echo
echo "==================== summary ($(ts), $((SECONDS - START))s) ===================="
printf "%-7s %-10s %6s  %s\n" stage result secs note
python3 - "$OUT/summary.json" "${SUMMARY[@]}" <<'EOF'
import json, sys
rows = [s.split("|", 3) for s in sys.argv[2:]]
for name, res, secs, note in rows:
    print(f"{name:7s} {res:10s} {secs:>6s}  {note}")
json.dump([{"stage": n, "result": r, "seconds": int(s), "note": t} for n, r, s, t in rows], open(sys.argv[1], "w"), indent=2)
EOF
if [ -f "$OUT/gpu_check.json" ]; then
  python3 -c "
import json; d=json.load(open('$OUT/gpu_check.json'))
bad=[r for r in d['results'] if not r['pass']]
print(f\"gpu_check on {d.get('device','?')}: {d['passed']} passed, {d['failed']} failed\")
for r in bad[:25]: print(f\"  FAIL {r['group']}/{r['name']}: {r['metric']}={r['value']} tol {r['tol']} {r['detail'][:160]}\")"
fi
[ -f "$WORK/bench_table.txt" ] && want bench && cat "$WORK/bench_table.txt"
sleep 1  # let tee finish writing run_all.log
exit 0
