#!/usr/bin/env bash
# Copy the nequip_pol pair styles, computes and fix into a LAMMPS source tree, for users who
# build LAMMPS themselves (e.g. with KOKKOS or their own MPI), and make its CMake build link
# libtorch (C++20).
#
#   lammps_patch/install.sh /path/to/lammps
#   cd /path/to/lammps && mkdir build && cd build
#   cmake ../cmake -DCMAKE_PREFIX_PATH=$(python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)') \
#         [-DPKG_KOKKOS=ON ...]
#   make -j
#
# The styles then are built in (no `plugin load`): pair_style allegro/pol and nequip/pol,
# compute pol/allegro, compute born/atom, fix efield/born. Run ./install.sh again after
# updating the sources; it is idempotent.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LMP="${1:?usage: install.sh /path/to/lammps (the folder holding src/ and cmake/)}"
[ -d "$LMP/src" ] && [ -f "$LMP/cmake/CMakeLists.txt" ] || {
  echo "$LMP does not look like a LAMMPS source tree (src/, cmake/CMakeLists.txt)" >&2; exit 1; }

for f in "$HERE"/src/*.cpp "$HERE"/src/*.h; do
  case "$(basename "$f")" in
    nequip_pol_plugin.cpp) continue ;;   # plugin entry point: not for a built-in install
  esac
  cp "$f" "$LMP/src/"
done
echo "copied $(ls "$HERE"/src/*.cpp "$HERE"/src/*.h | grep -vc nequip_pol_plugin) files into $LMP/src"

CM="$LMP/cmake/CMakeLists.txt"
MARK="# >>> nequip_pol (libtorch) >>>"
if ! grep -qF "$MARK" "$CM"; then
  cat >> "$CM" <<'CMAKE'
# >>> nequip_pol (libtorch) >>>
# added by nequip_pol lammps_patch/install.sh: pair allegro/pol, nequip/pol need libtorch
find_package(Torch REQUIRED)
set(CMAKE_CXX_STANDARD 20)
set_target_properties(lammps PROPERTIES CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON)
target_link_libraries(lammps PUBLIC "${TORCH_LIBRARIES}")
# CUDA build of torch: keep libtorch_cuda (its static initializers register AOTInductor's CUDA
# runner and torch::cuda's hooks; no symbol of it is referenced)
if(EXISTS "${TORCH_INSTALL_PREFIX}/lib/libtorch_cuda.so")
  target_link_libraries(lammps PUBLIC "-Wl,--no-as-needed"
    "${TORCH_INSTALL_PREFIX}/lib/libtorch_cuda.so" "${TORCH_INSTALL_PREFIX}/lib/libc10_cuda.so"
    "-Wl,--as-needed")
endif()
# <<< nequip_pol (libtorch) <<<
CMAKE
  echo "patched $CM: find_package(Torch), C++20, link libtorch"
else
  echo "$CM already patched"
fi
echo "configure with -DCMAKE_PREFIX_PATH=\$(python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
