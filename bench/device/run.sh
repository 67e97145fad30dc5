#!/usr/bin/env bash
# Runs on the GPU machine (device tool) from the repo root, with .dev (from bench/device/build.mjs) and .gl
# (the libvulkan1 .deb) carried. Writes everything under $OUT. Each step goes on even if an earlier one failed.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
T0=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - T0 ))s] $*"; }

step "setup"
ls /usr/local/nvidia/share/vulkan/icd.d/ 2>&1 | head -3
for f in .gl/*.deb; do dpkg -x "$f" / ; done; ldconfig
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && export VK_DRIVER_FILES="$icd" && break
done
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-none}"
python3 -c "import lzma,shutil,sys; [shutil.copyfileobj(lzma.open(a), open(b,'wb')) for a,b in [('.dev/node.xz','/tmp/node'),('.dev/dawn.node.xz','.dev/node_modules/webgpu/dist/linux-x64/dawn.node')]]"
chmod +x /tmp/node
ln -sfn ../node_modules .dev/b/node_modules
python3 -c "import lzma,tarfile; tarfile.open(fileobj=lzma.open('.dev/sharp.tar.xz')).extractall('.dev/node_modules')"
NODE=/tmp/node
$NODE --version
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,driver_version --format=csv
export XDG_RUNTIME_DIR=/tmp

step "probe"
timeout 60 $NODE .dev/b/probe.mjs 2>&1 | tee "$OUT/probe.txt"

step "parity on the fixtures (GPU kernel variants)"
for fx in tiny-blip2 small-blip2; do timeout 60 $NODE .dev/b/parity.mjs test/fixtures/$fx 2>&1 | tee "$OUT/parity-$fx.txt"; done

step "kernel benchmark"
[ "${SKIP_KERNELS:-0}" = 1 ] || timeout ${KERNEL_TIMEOUT:-110} $NODE .dev/b/kernels.mjs --json "$OUT/kernels.json" --time ${KERNEL_TIME_MS:-200} ${KERNEL_FILTER:+--filter "$KERNEL_FILTER"}

step "random full-size checkpoint"
CKPT=${CKPT:-/tmp/blip2-random}
[ -f "$CKPT/model.safetensors.index.json" ] || timeout 150 $NODE .dev/b/random-checkpoint.mjs "$CKPT" --config-dir test/fixtures/hf/blip2-opt-2.7b

# MODEL_DECODES: "device" (generate's greedy path: captured step, token chosen on the device) and/or "legacy" (0.1's
# loop, every step recorded anew and read back); BANDWIDTH_GBS puts decode beside its floor (H200: 4800).
# MODEL_DTYPES=skip leaves these out (a run for the quantized step alone).
for dtype in ${MODEL_DTYPES:-f16 f32}; do
  [ "$dtype" = skip ] && continue
  for decode in ${MODEL_DECODES:-device}; do
    step "model benchmark (ours, $dtype weights, $decode decode)"
    timeout ${MODEL_TIMEOUT:-150} $NODE --max-old-space-size=8192 .dev/b/model.mjs --checkpoint "$CKPT" --dtype $dtype --json "$OUT/model-$dtype-$decode.json" --runs 3 --tokens ${DECODE_TOKENS:-20} \
      --image test/fixtures/tiny-blip2/chelsea.png --label "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) node $decode" \
      --decode $decode --lookahead ${LOOKAHEAD:-2} ${BANDWIDTH_GBS:+--bandwidth-gbs $BANDWIDTH_GBS}
  done
done

# The quantized formats (docs/quantization.md): f16, q8 and q4 weights loaded together from the fp32 checkpoint
# (quantized while loading) and measured interleaved, f16 activations: decode q8 and q4 against f16 in one run.
step "model benchmark (ours, ${MODEL_QUANTIZE:-none,q8,q4} weights interleaved, f16 activations)"
[ "${SKIP_QUANT:-0}" = 1 ] || timeout ${QUANT_TIMEOUT:-300} $NODE --max-old-space-size=8192 .dev/b/model.mjs --checkpoint "$CKPT" --dtype f16 --quantize ${MODEL_QUANTIZE:-none,q8,q4} \
  --json "$OUT/model-quantized.json" --runs 3 --tokens ${DECODE_TOKENS:-20} --image test/fixtures/tiny-blip2/chelsea.png \
  --label "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) node quantized" ${BANDWIDTH_GBS:+--bandwidth-gbs $BANDWIDTH_GBS}

step "HF transformers reference"
[ "${SKIP_HF:-0}" = 1 ] || timeout ${HF_TIMEOUT:-130} env PYTHONUNBUFFERED=1 python3 bench/device/hf_reference.py "$CKPT" "$OUT/hf.json"

step "done"
