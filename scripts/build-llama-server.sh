#!/bin/sh
# llama.cpp's own server, built from the llama.cpp source that llama-cpp-python $1 vendors,
# with the same CMake flags as the wheel ($2), linked at $3: the peer bench/local_speed.py
# races at concurrency. Only the server target is built (about ten minutes on two cores); no
# network beyond PyPI (the sdist), no curl or OpenSSL (the bench loads a local GGUF over plain
# HTTP). The build stays beside the link: the binary finds its shared libraries there.
# PYTHON: an interpreter with pip (make passes the venv's).
set -eu
version=$1 cmake_args=$2 out=$3
[ -x "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
work="$(cd "$(dirname "$out")" && pwd)/llama-server-$version"
rm -rf "$work" && mkdir -p "$work"
"${PYTHON:-python3}" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
tar xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
# shellcheck disable=SC2086  # the flags are a list
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release $cmake_args -DLLAMA_CURL=OFF \
	-DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_SERVER=ON >/dev/null
cmake --build "$work/build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
ln -sf "$work/build/bin/llama-server" "$out"
