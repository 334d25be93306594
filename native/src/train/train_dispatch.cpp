// Picks the training table that belongs to a forward kernel table (same ISA file, same flags).
#include "train_kernels.h"

namespace bort {

#if !(defined(__x86_64__) || defined(_M_X64))
const TrainKernels* train_kernels_avx2() { return nullptr; }
const TrainKernels* train_kernels_avx512() { return nullptr; }
#endif
#if !defined(__aarch64__) || defined(BORT_NO_NEON)
const TrainKernels* train_kernels_neon() { return nullptr; }
#endif

const TrainKernels* train_kernels_matching(const Kernels* k) {
  if (!k) return nullptr;
  if (k == kernels_scalar()) return train_kernels_scalar();
  if (k == kernels_avx2()) return train_kernels_avx2();
  if (k == kernels_avx512()) return train_kernels_avx512();
  if (k == kernels_neon()) return train_kernels_neon();
  return nullptr;
}

}  // namespace bort
