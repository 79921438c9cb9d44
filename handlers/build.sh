#!/usr/bin/env bash
# Rebuild every example handler and leave the .wasm beside its sources (they are committed,
# so tests need no toolchain). Run as `make handlers` or `handlers/build.sh`;
# `handlers/build.sh geo-weather` rebuilds only the handlers named (and checks only the
# tools they need).
#
# Toolchain (Debian): apt-get install clang lld wasi-libc libclang-rt-dev-wasm32 wabt binaryen \
#   rustc cargo libstd-rust-dev-wasm32
# Rust comes from Debian's /usr/bin on purpose: a rustup toolchain earlier on PATH may lack
# the wasm32-wasi standard library, and builds must work offline (std only, no crates).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLANG="${CLANG:-clang}"
WASM_LD="${WASM_LD:-wasm-ld}"
WASM_OPT="${WASM_OPT:-wasm-opt}"
CARGO="${CARGO:-/usr/bin/cargo}"
RUSTC="${RUSTC:-/usr/bin/rustc}"
RUST_TARGET="${RUST_TARGET:-wasm32-wasi}"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "handlers/build.sh: '$1' not found; install: $2" >&2
        exit 1
    }
}
need "$CLANG" "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32"
need "$WASM_LD" "apt-get install lld"
if [ "$#" -eq 0 ]; then
    need "$WASM_OPT" "apt-get install binaryen"
    need "$CARGO" "apt-get install cargo"
    need wat2wasm "apt-get install wabt"
    need "$RUSTC" "apt-get install rustc libstd-rust-dev-wasm32"
    targets="$("$RUSTC" --print target-list)"
    grep -qx "$RUST_TARGET" <<<"$targets" || {
        echo "handlers/build.sh: $RUSTC has no $RUST_TARGET target" >&2
        exit 1
    }
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/edgecdn-handlers.XXXXXX")"
trap 'rm -rf "$work"' EXIT
CFLAGS=(-O2 -Wall -Wextra -Werror -std=c11)
# Small stacks, placed first: every request gets a fresh instance, and the pooling allocator
# clears a freed instance's memory, so a module's initial memory is paid on every request.
# The toolchains' defaults (C 64 KiB, Rust 1 MiB) made that 2 and 17 pages; 32 KiB for C and
# 64 KiB for Rust fit these handlers with room to spare and cut a request by ~2 us (C) and
# ~24 us (Rust) (bench/README.md, Wasm execution overhead). Stack first, so an overflow
# traps (out of bounds) instead of running into the data.
C_STACK=(-Wl,--stack-first -Wl,-z,stack-size=32768)
RUST_STACK="-C link-arg=--stack-first -C link-arg=-zstack-size=65536"

# A WASI preview-1 command (WAGI ABI) in C against wasi-libc.
wagi_c() { # source output
    "$CLANG" --target=wasm32-wasi "${CFLAGS[@]}" "${C_STACK[@]}" -Wl,--strip-all "$1" -o "$work/out.wasm"
    install -m 0644 "$work/out.wasm" "$2"
}

# A freestanding reactor (no libc, no imports). Compiled and linked separately so that the
# clang driver does not run its own wasm-opt without bulk memory enabled.
reactor_c() { # source output
    "$CLANG" --target=wasm32-unknown-unknown "${CFLAGS[@]}" -mbulk-memory -nostdlib -c "$1" -o "$work/out.o"
    "$WASM_LD" --no-entry --export=edge_alloc --export=edge_handle --stack-first -z stack-size=32768 --strip-all "$work/out.o" -o "$work/out.wasm"
    "$WASM_OPT" -O2 --enable-bulk-memory "$work/out.wasm" -o "$work/out.wasm"
    install -m 0644 "$work/out.wasm" "$2"
}

# A WASI command in Rust (std only, offline).
wagi_rust() { # crate-dir binary-name output
    RUSTFLAGS="$RUST_STACK" RUSTC="$RUSTC" CARGO_TARGET_DIR="$work/cargo" "$CARGO" build --quiet --offline --release \
        --locked --target "$RUST_TARGET" --manifest-path "$1/Cargo.toml"
    install -m 0644 "$work/cargo/$RUST_TARGET/release/$2.wasm" "$3"
}

build_all() {
    wagi_c "$here/geo-hello/geo_hello.c" "$here/geo-hello/geo_hello.wasm"
    wagi_rust "$here/geo-hello/rust" geo_hello_rs "$here/geo-hello/geo_hello_rs.wasm"
    reactor_c "$here/geo-hello-reactor/geo_hello_reactor.c" "$here/geo-hello-reactor/geo_hello_reactor.wasm"
    wagi_rust "$here/sensor-stats" sensor_stats "$here/sensor-stats/sensor_stats.wasm"
    # The same module warning above 25 °C instead of 30 °C: an OTA update with a visible effect.
    SENSOR_STATS_WARNING_ABOVE_C=25 wagi_rust "$here/sensor-stats" sensor_stats "$here/sensor-stats/sensor_stats_25c.wasm"
    wat2wasm "$here/geo-hello-broken/geo_hello_broken.wat" -o "$here/geo-hello-broken/geo_hello_broken.wasm"
    build_geo_weather
}

# Calls out through edge_http (handlers/sdk/edge_http.h): the host imports are undefined
# symbols wasm-ld turns into imports of the "edge_http" module.
build_geo_weather() {
    wagi_c "$here/geo-weather/geo_weather.c" "$here/geo-weather/geo_weather.wasm"
}

if [ "$#" -eq 0 ]; then
    build_all
fi
for name in "$@"; do
    case "$name" in
    geo-weather) build_geo_weather ;;
    *)
        echo "handlers/build.sh: no handler '$name' to build alone (known: geo-weather; none: all)" >&2
        exit 1
        ;;
    esac
done

for wasm in "$here"/*/*.wasm; do
    printf '%8d  %s  %s\n' "$(stat -c %s "$wasm")" "$(sha256sum "$wasm" | cut -c1-12)" "${wasm#"$here"/}"
done
