#!/usr/bin/env bash
# Rebuild the wasi-http test components and leave each <name>.wasm beside its source; they
# are committed, so tests need no toolchain. Python ones: Spin SDK + componentize-py
# (PyPI); the JS one: componentize-js (npm, needs node). APPS="..." picks some.
#
# Both tools come from PyPI into a throwaway venv (never the project's): spin-sdk 3.x is
# the line that targets wasi:http/incoming-handler@0.2.0 (5.x targets WASI 0.3), and
# componentize-py 0.17.2 is the version spin-sdk 3.4.1 generates its bindings with (newer
# releases lay the bindings out differently: "No module named 'spin_sdk.wit.types'").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SPIN_SDK="${SPIN_SDK:-spin-sdk==3.4.1}"
COMPONENTIZE_PY="${COMPONENTIZE_PY:-componentize-py==0.17.2}"
venv="${COMPONENT_VENV:-${TMPDIR:-/tmp}/edgecdn-componentize-py}"

python_apps=()
for app in ${APPS:-geo-greeting misbehave}; do
    case "$app" in *-js) ;; *) python_apps+=("$app") ;; esac
done
if [ "${#python_apps[@]}" -gt 0 ]; then
    if [ ! -x "$venv/bin/componentize-py" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "$SPIN_SDK" "$COMPONENTIZE_PY"
    fi
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fi
for app in "${python_apps[@]}"; do
    out="$here/$app/${app//-/_}.wasm"
    # spin_sdk's componentize-py.toml brings its WIT (world spin-http) along with -p.
    (cd "$here/$app" && "$venv/bin/componentize-py" -w spin-http componentize -p . -p "$site" app -o "$out")
    echo "built $app/${app//-/_}.wasm ($(stat -c %s "$out") bytes)"
done

# JS apps: name and the world its world.wit declares.
declare -A js_worlds=([geo-greeting-js]=geo [geo-weather-js]=weather)
js_apps=()
for app in ${APPS:-geo-greeting-js geo-weather-js}; do
    [ -z "${js_worlds[$app]:-}" ] || js_apps+=("$app")
done
if [ "${#js_apps[@]}" -gt 0 ]; then
    COMPONENTIZE_JS="${COMPONENTIZE_JS:-@bytecodealliance/componentize-js@0.23.0}"
    npm_dir="${COMPONENT_NPM:-${TMPDIR:-/tmp}/edgecdn-componentize-js}"
    if [ ! -d "$npm_dir/node_modules/@bytecodealliance/componentize-js" ]; then
        mkdir -p "$npm_dir"
        (cd "$npm_dir" && npm install --silent --no-audit --no-fund "$COMPONENTIZE_JS")
    fi
    cp "$here/geo-greeting-js/componentize.mjs" "$npm_dir/"
fi
for app in "${js_apps[@]}"; do
    # The engine exports wasi:http@0.2.10; jco ships the 0.2.12 WIT (0.2.10's lacks http),
    # identical for this world but for the version, so relabel it.
    wit="$(mktemp -d "${TMPDIR:-/tmp}/edgecdn-wit.XXXXXX")"
    mkdir -p "$wit/deps"
    cp "$here/$app/world.wit" "$wit/"
    cp -r "$npm_dir/node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12/"wasi-* "$wit/deps/"
    grep -rl '0\.2\.12' "$wit/deps" | xargs sed -i 's/0\.2\.12/0.2.10/g'
    out="$here/$app/${app//-/_}.wasm"
    node "$npm_dir/componentize.mjs" "$here/$app/app.js" "$wit" "$out" "${js_worlds[$app]}"
    rm -rf "$wit"
    echo "built $app/${app//-/_}.wasm ($(stat -c %s "$out") bytes)"
done
