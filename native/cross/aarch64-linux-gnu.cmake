# CMake toolchain: cross-compile for linux-arm64 with Debian's g++-aarch64-linux-gnu.
# Executables are linked statically so qemu-aarch64 runs them without an arm64 sysroot, and
# CMAKE_CROSSCOMPILING_EMULATOR lets ctest run them under qemu as well.
#   cmake -S native/cross -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=native/cross/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

find_program(BORT_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(BORT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${BORT_QEMU_AARCH64})
endif()
