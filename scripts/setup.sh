#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for reap.cpp and build it.
#
#   scripts/setup.sh [-- extra CMake flags for llama.cpp, e.g. -DGGML_CUDA=ON]
#
# llama.cpp is always built with its RPC backend (-DGGML_RPC=ON) so that `reap profile --rpc`
# can spread a model over several machines; `rpc-server` and `llama-bench` are built alongside.
#
# 1. apt-installs the Debian packages the build needs (only those missing; needs root).
# 2. Finds an installed llama.cpp (CMake package `llama`), or provisions the pinned release that
#    ships inside the npm package node-llama-cpp (tarball integrity checked) into a cache
#    directory outside the checkout, keyed by version and flags, so a second run reuses it.
# 3. Checks that the engine runs here: decodes a few tokens of the committed tiny model with it
#    (scripts/engine_selfcheck.c) and stops with one line if that dies or fails.
# 4. Configures and builds reap.cpp into ./build.
#
# Environment:
#   REAP_CACHE        cache root (default: ~/.cache/reap.cpp)
#   REAP_LLAMA_PREFIX use this installed llama.cpp prefix instead of provisioning one
#   REAP_BUILD_DIR    reap.cpp build directory (default: ./build)
#   REAP_JOBS         parallel build jobs (default: nproc)
#   REAP_CMAKE_FLAGS  extra CMake flags for reap.cpp itself (e.g. -DREAP_WERROR=ON)
#   REAP_BUILD_TARGETS what to build (default: everything, tests included; the demo builds `reap`)
#   REAP_TRAINER=1    also install what the optional trainer of the committed model needs
#                     (tools/train-tiny-moe/: python3-torch, and OpenBLAS, without which
#                     Debian's torch multiplies matrices ~15x slower); reap itself never does
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
NODE_LLAMA_CPP_INTEGRITY='sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw=='

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extra_llama_flags=(-DGGML_RPC=ON)
if [ "${1:-}" = "--" ]; then shift; extra_llama_flags+=("$@"); fi

# ggml's AMX kernels are left out on x86-64. With GGML_NATIVE (-march=native) an Intel Xeon with
# AMX (Sapphire Rapids and later) compiles them, and in the pinned release they crash on current
# kernels: the tile-data permission (arch_prctl(ARCH_REQ_XCOMP_PERM)) is requested on one thread
# only and the tile configuration can be optimised away, so every forward pass dies in
# ggml_backend_amx_mul_mat (SIGILL/SIGSEGV at ldtilecfg; llama.cpp issues #20824, #28756). GCC
# and clang honour an explicit -mno-amx-* whatever its place relative to -march=native, so the
# rest of the native ISA stays. Drop this once the pinned release contains llama.cpp PR #26954
# (per-thread permission request and a kept tile configuration).
llama_c_flags=()
case "$(uname -m)" in
  x86_64|amd64) llama_c_flags=(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16) ;;
esac
if [ ${#llama_c_flags[@]} -gt 0 ]; then
  extra_llama_flags=("-DCMAKE_C_FLAGS=${llama_c_flags[*]}" "-DCMAKE_CXX_FLAGS=${llama_c_flags[*]}" "${extra_llama_flags[@]}")
fi

jobs=${REAP_JOBS:-$(nproc)}
cache=${REAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reap.cpp}
build_dir=${REAP_BUILD_DIR:-$here/build}

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# ---- 1. Debian packages --------------------------------------------------------------------
# clang-format: scripts/test.sh checks the formatting (scripts/format.sh --check) before it builds.
need_pkgs=(build-essential cmake ninja-build git ca-certificates nodejs npm
           nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
           python3-numpy time openssl chromium clang clang-format)
if [ "${REAP_TRAINER:-0}" = 1 ]; then need_pkgs+=(python3-torch libopenblas0-pthread); fi
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node/npm may come from elsewhere (nvm, a tarball); only ask apt when the command is absent.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/#nodejs/}"); missing=("${missing[@]/#npm/}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root to apt-get install: ${missing[*]}"
    SUDO=sudo
  else
    SUDO=
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- 2. llama.cpp ----------------------------------------------------------------------------
find_installed_llama() {
  # An explicit prefix wins; then any prefix on CMAKE_PREFIX_PATH or a system location.
  local c prefixes=${CMAKE_PREFIX_PATH:-}
  for c in ${REAP_LLAMA_PREFIX:-} ${prefixes//:/ } /usr/local /usr; do
    [ -n "$c" ] || continue
    for d in "$c"/lib/cmake/llama "$c"/lib/*/cmake/llama "$c"/lib64/cmake/llama; do
      [ -f "$d/llama-config.cmake" ] && { echo "$c"; return 0; }
    done
  done
  return 1
}

# llama.cpp's tools reap's tests and users run beside it: llama-perplexity (independent
# cross-checks of eval), llama-bench (the baseline of bench/profile_bench.sh), rpc-server
# (model-parallel profiling), llama-imatrix (the cross-check of `profile --imatrix`) and
# llama-quantize (the user's next step after prune, and `sweep --quant`'s cross-check).
llama_tools=(llama-perplexity llama-bench ggml-rpc-server llama-imatrix llama-quantize)

# Builds the tools of llama_tools that $1/build lacks and links each into $1/install/bin.
link_llama_tools() {
  local root=$1 t missing=()
  for t in "${llama_tools[@]}"; do [ -x "$root/build/bin/$t" ] || missing+=("$t"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "building llama.cpp's ${missing[*]}"
    cmake --build "$root/build" -j "$jobs" --target "${missing[@]}" >>"$root/build.log" 2>&1 || return 1
  fi
  mkdir -p "$root/install/bin"
  for t in "${llama_tools[@]}"; do
    # rpc-server keeps the name it is installed under.
    ln -sf "$root/build/bin/$t" "$root/install/bin/${t/#ggml-rpc-server/rpc-server}"
  done
}

provision_llama() {
  local flags_key key root
  flags_key=$(printf '%s ' "${extra_llama_flags[@]:-}" | sha256sum | cut -c1-8)
  key="node-llama-cpp-${NODE_LLAMA_CPP_VERSION}-${flags_key}"
  root="$cache/llama.cpp/$key"
  if [ -f "$root/.complete" ]; then
    log "reusing llama.cpp from $root"
    # A cache made before a tool joined the list gets it built now (seconds: the libraries are
    # there), so the cache key need not change and the engine is not rebuilt.
    link_llama_tools "$root" || die "llama.cpp tools build failed (log: $root/build.log)"
    echo "$root/install"; return 0
  fi
  log "provisioning llama.cpp from node-llama-cpp@${NODE_LLAMA_CPP_VERSION} into $root"
  rm -rf "$root"; mkdir -p "$root"
  (
    cd "$root"
    npm pack --silent "node-llama-cpp@${NODE_LLAMA_CPP_VERSION}" >/dev/null 2>npm-pack.log \
      || { cat npm-pack.log >&2; exit 1; }
    tgz="node-llama-cpp-${NODE_LLAMA_CPP_VERSION}.tgz"
    [ -f "$tgz" ] || { echo "npm pack produced no $tgz" >&2; exit 1; }
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    [ "$got" = "$NODE_LLAMA_CPP_INTEGRITY" ] || { echo "integrity mismatch for $tgz: $got" >&2; exit 1; }
    tar xzf "$tgz" package/llama/gitRelease.bundle package/llama/binariesGithubRelease.json
    git clone -q package/llama/gitRelease.bundle src 2>/dev/null
    rm -rf package "$tgz"
  ) || die "could not fetch llama.cpp from npm"
  # Only the libraries and the tools of llama_tools (below) are built. llama.cpp's install step
  # also installs mtmd (tools/), so that target is built as well.
  cmake -S "$root/src" -B "$root/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$root/install" \
    -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=ON \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_TOOLS_INSTALL=OFF -DGGML_CCACHE=OFF \
    "${extra_llama_flags[@]}" >"$root/configure.log" 2>&1 \
    || { tail -30 "$root/configure.log" >&2; die "llama.cpp configure failed (log: $root/configure.log)"; }
  cmake --build "$root/build" -j "$jobs" \
    --target llama ggml mtmd >"$root/build.log" 2>&1 \
    || { tail -30 "$root/build.log" >&2; die "llama.cpp build failed (log: $root/build.log)"; }
  cmake --install "$root/build" >"$root/install.log" 2>&1 \
    || { tail -30 "$root/install.log" >&2; die "llama.cpp install failed"; }
  link_llama_tools "$root" || { tail -30 "$root/build.log" >&2; die "llama.cpp tools build failed"; }
  touch "$root/.complete"
  echo "$root/install"
}

# ---- 3. engine self-check -----------------------------------------------------------------------
# Decode a few tokens of the committed tiny model with the engine reap will link against, so an
# engine that cannot run here (built for another CPU, or the AMX kernels above) stops setup with
# one line now instead of crashing later in the demo or half the tests. ~1 s: runs every time.
if prefix=$(find_installed_llama); then
  log "using installed llama.cpp at $prefix"
  "$here/scripts/engine_selfcheck.sh" "$prefix" "rebuild it for this machine, or unset REAP_LLAMA_PREFIX (and CMAKE_PREFIX_PATH) so that scripts/setup.sh provisions one" || exit 1
else
  prefix=$(provision_llama)
  "$here/scripts/engine_selfcheck.sh" "$prefix" "remove $(dirname "$prefix") and rerun scripts/setup.sh, or build a portable engine with scripts/setup.sh -- -DGGML_NATIVE=OFF" || exit 1
fi

# ---- 4. reap.cpp -----------------------------------------------------------------------------
cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${REAP_BUILD_TYPE:-Release} \
  -DCMAKE_PREFIX_PATH="$prefix" ${REAP_CMAKE_FLAGS:-} >/dev/null
# shellcheck disable=SC2086 # a list of target names
cmake --build "$build_dir" -j "$jobs" ${REAP_BUILD_TARGETS:+--target $REAP_BUILD_TARGETS}
log "built $build_dir/bin/reap (llama.cpp: $prefix)"
# Later steps (scripts/test.sh's sanitizer build) configure against the same llama.cpp.
echo "$prefix" >"$build_dir/llama-prefix.txt"
