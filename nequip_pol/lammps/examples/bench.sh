#!/usr/bin/env bash
# Time pair allegro/pol on 1 and 2 MPI ranks for models with and without Born charges.
#   bench.sh MODEL_WITH_BORN.nequip.pt2 [MODEL_WITHOUT_BORN.nequip.pt2] [A B X]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$(dirname "$(command -v lmp)")"
A="${3:-Ba}"; B="${4:-Ti}"; X="${5:-O}"
export OMP_NUM_THREADS=1
for model in "$1" ${2:-}; do
  for np in 1 2; do
    out=$("$BIN/mpirun" -np "$np" "$BIN/lmp" -in "$HERE/in.bench" -var model "$model" \
          -var A "$A" -var B "$B" -var X "$X" -var plugin "$HERE/../build/nequip_polplugin.so" \
          -log none | grep -E "^Performance|^Loop time" | tail -2 | tr '\n' ' ')
    echo "$(basename "$model") np=$np: $out"
  done
done
