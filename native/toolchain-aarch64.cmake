# Cross-build the kernel library and tests for arm64 (NEON path) and run them under qemu:
#   apt-get install g++-aarch64-linux-gnu qemu-user
#   cmake -S . -B native/build-arm64 -DCMAKE_TOOLCHAIN_FILE=native/toolchain-aarch64.cmake
#   cmake --build native/build-arm64 -j && ctest --test-dir native/build-arm64
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
find_program(BORT_QEMU qemu-aarch64)
if(BORT_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${BORT_QEMU})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
