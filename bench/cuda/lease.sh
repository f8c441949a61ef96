#!/usr/bin/env bash
# CUDA checks on a lent GPU machine that has Python PyTorch (a CUDA LibTorch), CMake, ninja and
# nvcc but no Node.js and no network. The ignored folder .gpu/ brings what is missing: node
# (node.xz, this machine's /usr/bin/node), the npm packages (node_modules without typescript;
# dist/ is built here and carried too), zlib's headers and openai/guided-diffusion's
# guided_diffusion package (gd-openai/): `bash bench/cuda/pack.sh` assembles it; carry
# .gpu and dist. Builds the addon against that
# LibTorch without cmake-js, runs the CUDA and reference-case tests, the host <-> CUDA copy
# benchmark (bench/cuda/transfers.ts), then the CUDA sampling benchmark.
#   bash bench/cuda/lease.sh [PART...]   (writes its reports to $OUT, or /tmp/gd-cuda)
# PARTs after the build, in order: tests transfers jit fast bench openai (default: tests transfers bench).
# openai: the paper's nets with use_fp16 against their code (bench/cuda/openai_nets.ts).
set -uo pipefail
OUT=${OUT:-/tmp/gd-cuda}
mkdir -p "$OUT" /tmp/nodebin
xz -dc .gpu/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
export PATH=/tmp/nodebin:$PATH
[ -d node_modules ] || cp -r .gpu/node_modules node_modules
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  nproc; node --version; } | tee "$OUT/machine.txt"
TORCH_CMAKE=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
ZINC=/usr/include; [ -f $ZINC/zlib.h ] || ZINC=$PWD/.gpu/zlib/usr/include
ZLIB=$(ldconfig -p | awk '/libz\.so\.1 /{print $NF; exit}')
start=$(date +%s)
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_JS_VERSION=8.0.0 \
  -DCMAKE_JS_INC="$PWD/node_modules/node-api-headers/include" -DCMAKE_PREFIX_PATH="$TORCH_CMAKE" \
  -DZLIB_INCLUDE_DIR="$ZINC" -DZLIB_LIBRARY="$ZLIB" \
  -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/build-cuda/Release" > "$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
cmake --build build-cuda -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m3 -B2 -A12 'error' "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
export GD_ADDON_PATH=$PWD/build-cuda/Release/guided_diffusion.node
for part in "${@:-tests transfers bench}"; do for p in $part; do case $p in
  tests) node node_modules/mocha/bin/mocha.js --no-config --timeout 120000 --exit dist/test/cuda.test.js dist/test/reference-case.test.js 2>&1 | tee "$OUT/tests.log" | tail -45 ;;
  transfers) timeout 60 node dist/bench/cuda/transfers.js 2>&1 | tee "$OUT/transfers.md" ;;
  jit) timeout 150 node dist/bench/cuda/jit_executor.js 2>&1 | tee "$OUT/jit_executor.md" ;;
  fast) timeout 300 node dist/bench/cuda/fast_samplers.js 2>&1 | tee "$OUT/fast_samplers.md" ;;
  bench) timeout ${GD_BENCH_TIMEOUT:-300} node dist/bench/run.js --device cuda --case shipped --rounds ${GD_BENCH_ROUNDS:-2} --threads 4 --max-wait 0 --out "$OUT/RESULTS-cuda.md" > "$OUT/bench.log" 2>&1
    echo "bench exit $?"; grep -A12 '^| configuration' "$OUT/RESULTS-cuda.md" | head -16 ;;
  openai) timeout ${GD_OPENAI_TIMEOUT:-400} node dist/bench/cuda/openai_nets.js --repo .gpu/gd-openai --rounds ${GD_BENCH_ROUNDS:-3} --out "$OUT/OPENAI_NETS.md" > "$OUT/openai.log" 2>&1
    echo "openai exit $?"; tail -12 "$OUT/openai.log" ;;
  *) echo "unknown part $p"; exit 2 ;;
esac; done; done
