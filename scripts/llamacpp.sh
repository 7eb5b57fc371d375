# Sourced by the scripts that use llama.cpp as an oracle: builds the vendored llama.cpp of the
# PyPI `llama-cpp-python` sdist once into ~/.cache/wasm-chord (outside the repo), with the best x86
# flags that run here (AMX off: a VM may forbid its tiles). Sets SRC; `ensure_llamacpp TARGET`
# builds that ninja target (e.g. llama, llama-bench) if FILE (relative to SRC/build/bin) is missing.
CACHE="$HOME/.cache/wasm-chord"
VER=0.3.36
SRC="$CACHE/llama_cpp_python-$VER/vendor/llama.cpp"
ensure_llamacpp() {
    local target=$1 file=$2
    [ -e "$SRC/build/bin/$file" ] && return 0
    mkdir -p "$CACHE"
    pip install -q scikit-build-core cmake ninja
    [ -d "$SRC" ] || {
        pip download -q --no-deps --no-build-isolation "llama-cpp-python==$VER" -d "$CACHE/sdist"
        tar xzf "$CACHE/sdist/llama_cpp_python-$VER.tar.gz" -C "$CACHE"
    }
    cmake -S "$SRC" -B "$SRC/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
        -DGGML_BMI2=ON -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON \
        -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
    ninja -C "$SRC/build" "$target"
}
