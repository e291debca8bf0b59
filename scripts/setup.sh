#!/bin/sh
# Installs what building modelvault needs beyond a Rust toolchain:
# libclang (bindgen runs it while compiling the rocksdb crate).
# Safe to run again: it does nothing when everything is present.
set -eu

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install a Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi

have_libclang() {
    # The names bindgen loads: libclang.so, libclang.so.N, libclang-N.so.
    # Not libclang-cpp.so, which LLVM packages install without libclang
    # itself and which bindgen cannot use.
    for d in ${LIBCLANG_PATH:-} /usr/lib/llvm-*/lib /usr/lib/* /usr/lib64; do
        for f in "$d"/libclang.so* "$d"/libclang-[0-9]*.so*; do
            [ -e "$f" ] && return 0
        done
    done
    return 1
}

if ! have_libclang; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "setup: installing libclang-dev (needed by the rocksdb crate's bindgen)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev >/dev/null
    elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
        echo "setup: installing libclang-dev with sudo" >&2
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev >/dev/null
    else
        echo "setup: libclang is missing and cannot be installed here." >&2
        echo "       Install your system's libclang development package (Debian/Ubuntu: libclang-dev," >&2
        echo "       Fedora: clang-devel, macOS: xcode-select --install) or set LIBCLANG_PATH." >&2
        exit 1
    fi
fi
