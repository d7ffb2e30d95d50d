#!/usr/bin/env bash
# Installs the toolchains of the example managers into the build tree and
# builds the examples into target/examples/*.wasm. Idempotent: a no-op
# (well under a second) when the toolchains are installed and every output
# is newer than its sources.
#
#   Python:     target/py-venv with componentize-py $COMPONENTIZE_PY_VERSION and
#               the SDK sdk/python (pip install from the path)
#   JavaScript: managers/examples/js/node_modules from package-lock.json (npm ci;
#               the SDK sdk/js installed from its path as a copy, see js/.npmrc)
#
# Both SDKs carry a copy of the contract (wit/ironic-hardware-0.3.0) in their
# package; a copy that drifted from it fails the build.
#
# Exit codes: 0 built (or up to date); 77 a toolchain cannot be installed
# here (no python3/node/npm, or the package registry is unreachable): the
# example tests skip; anything else is a build failure.
set -euo pipefail
case ${BASH_SOURCE[0]} in
*/*) here=${BASH_SOURCE[0]%/*} ;;
*) here=. ;;
esac
here=$(cd -- "$here" && pwd)
[ -f "$here/examples-setup.sh" ] || { echo "examples-setup: cannot find the repository" >&2; exit 1; }
cd "$here/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
out=$target/examples
venv=$target/py-venv
COMPONENTIZE_PY_VERSION=0.25.1
ex=managers/examples
wit=wit/ironic-hardware-0.3.0
sdk_py=sdk/python
sdk_js=sdk/js

skip() { echo "examples-setup: cannot install the $1 toolchain: $2" >&2; exit 77; }
log() { echo "examples-setup: $*" >&2; }

mkdir -p "$out"
for copy in "$sdk_py/src/ironic_hardware/wit" "$sdk_js/wit"; do
    diff -r "$wit" "$copy" >&2 || { echo "examples-setup: $copy differs from $wit: copy the contract into the SDK" >&2; exit 1; }
done
# One run at a time (make and the test may both call this).
exec 9>"$out/.lock"
command -v flock >/dev/null && flock 9

# --- toolchains ---

command -v python3 >/dev/null || skip Python "python3 is not installed"
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
    log "installing componentize-py $COMPONENTIZE_PY_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || skip Python "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION" \
        || { rm -rf "$venv"; skip Python "pip install componentize-py==$COMPONENTIZE_PY_VERSION failed"; }
fi
# The SDK, reinstalled when its sources changed. pip builds it in a copy,
# leaving nothing in the source tree but setuptools' build/ (ignored).
sdk_stamp=$venv/.ironic-hardware-installed
if [ ! -f "$sdk_stamp" ] || [ -n "$(find "$sdk_py" -newer "$sdk_stamp" -not -path '*/build/*' -not -path '*.egg-info*' -not -path '*/__pycache__/*' -print -quit)" ]; then
    log "installing the Python SDK ($sdk_py) into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "./$sdk_py" \
        || skip Python "pip install ./$sdk_py failed"
    rm -rf "$sdk_py/build" "$sdk_py"/src/*.egg-info
    touch "$sdk_stamp"
fi

command -v node >/dev/null || skip JavaScript "node is not installed"
command -v npm >/dev/null || skip JavaScript "npm is not installed"
stamp=$ex/js/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ "$ex/js/package-lock.json" -nt "$stamp" ] || [ "$ex/js/package.json" -nt "$stamp" ] \
    || [ -n "$(find "$sdk_js" -newer "$stamp" -not -path '*/node_modules/*' -print -quit)" ]; then
    log "installing the JavaScript toolchain (npm ci in $ex/js)"
    (cd "$ex/js" && npm ci --no-audit --no-fund --loglevel=error) \
        || skip JavaScript "npm ci failed"
fi

# --- builds (skipped when the output is newer than every input) ---

# stale OUT INPUT...: true when OUT is missing or an input is newer.
stale() {
    local target=$1; shift
    [ -f "$target" ] || return 0
    [ -n "$(find "$@" -newer "$target" -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -print -quit)" ]
}

py_out=$out/example-vendor-python.wasm
if stale "$py_out" "$ex/python" "$sdk_stamp" "$venv/bin/componentize-py"; then
    log "building $py_out"
    start=$(date +%s)
    PATH="$venv/bin:$PATH" bash "$ex/python/build.sh" "$py_out" \
        || { echo "examples-setup: building $py_out failed" >&2; exit 1; }
    log "built $py_out ($(stat -c %s "$py_out") bytes, $(( $(date +%s) - start )) s)"
fi

fw_out=$out/example-firmware-python.wasm
if stale "$fw_out" "$ex/firmware-python" "$sdk_stamp" "$venv/bin/componentize-py"; then
    log "building $fw_out"
    start=$(date +%s)
    "$venv/bin/python" -m ironic_hardware.build "$ex/firmware-python/app.py" -o "$fw_out" --quiet \
        || { echo "examples-setup: building $fw_out failed" >&2; exit 1; }
    log "built $fw_out ($(stat -c %s "$fw_out") bytes, $(( $(date +%s) - start )) s)"
fi

js_out=$out/example-vendor-js.wasm
if stale "$js_out" "$ex/js/app.js" "$ex/js/build.mjs" "$ex/js/manifest.toml" "$stamp"; then
    log "building $js_out"
    start=$(date +%s)
    node "$ex/js/build.mjs" "$js_out" >/dev/null
    log "built $js_out ($(stat -c %s "$js_out") bytes, $(( $(date +%s) - start )) s)"
fi
