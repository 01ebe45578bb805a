#!/usr/bin/env bash
# llama-cpp-python (llama.cpp's OpenAI-compatible server, built from source by pip) for the
# real-server tests, from a wheel cached outside the clone: the build takes minutes on 2 cores the
# first time, seconds after. Installs into the python3 that runs it.
set -euo pipefail
VERSION=0.3.36
CACHE="${EDITSEQ_LLAMA_CPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/editseq-llamacpp}"
mkdir -p "$CACHE/wheels"
wheel=$(ls "$CACHE"/wheels/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  # A portable CPU build (no -march=native), without llama.cpp's tools, tests and examples.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_OPENMP=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    python3 -m pip wheel --no-deps "llama-cpp-python==$VERSION" -w "$CACHE/wheels"
  wheel=$(ls "$CACHE"/wheels/llama_cpp_python-"$VERSION"-*.whl | head -n1)
fi
python3 -m pip install "${wheel}[server]"
