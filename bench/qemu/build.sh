#!/usr/bin/env bash
# Build bare-metal MicroPython for qemu's mps2-an385 (a Cortex-M3) for the coder-cost figure
# (bench/coder_cost.py, bench/README.md "Board coder cost"). Installs nothing: it needs
#   apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm    (Debian bookworm)
# and a MicroPython source tree of v1.27 or later (time.ticks_us, select on stdin,
# sys.stdin.buffer), e.g.
#   git clone --depth 1 -b v1.28.0 https://github.com/micropython/micropython /tmp/micropython
#   bench/qemu/build.sh /tmp/micropython
# No submodule is needed: the frozen test modules (which want micropython-lib) are left out.
# The heap is 2.5 MiB (the board has 4 MiB of RAM): seconds of audio fit in it.
# Result: bench/qemu/firmware-mps2-an385.elf (~200 kB; coder_cost.py finds it there).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:?usage: bench/qemu/build.sh MICROPYTHON_SOURCE_DIR}"
for tool in arm-none-eabi-gcc qemu-system-arm; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm" >&2; exit 1; }
done
make -C "$src/ports/qemu" BOARD=MPS2_AN385 FROZEN_MANIFEST= MICROPY_HEAP_SIZE=2621440 \
    -j"$(nproc)" "${@:2}"
cp "$src/ports/qemu/build-MPS2_AN385/firmware.elf" "$here/firmware-mps2-an385.elf"
arm-none-eabi-strip "$here/firmware-mps2-an385.elf"
ls -l "$here/firmware-mps2-an385.elf"
