// Run-time ISA selection: cpuid + XCR0 on x86-64 (so one binary serves every x86-64 server), NEON on
// arm64, scalar elsewhere. BORT_ISA=scalar|avx2|avx512|neon forces a path. The choice is made once.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#define BORT_X86 1
#include <cpuid.h>
#endif

namespace bort {

#if !defined(BORT_X86)
const Kernels* kernels_avx2() { return nullptr; }
const Kernels* kernels_avx512() { return nullptr; }
#endif
#if !defined(__aarch64__) || defined(BORT_NO_NEON)
const Kernels* kernels_neon() { return nullptr; }
#endif

namespace {

#if defined(BORT_X86)
uint64_t xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

struct X86Features {
  bool avx2 = false, avx512 = false;
  X86Features() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
    if (!osxsave || !avx) return;
    const uint64_t x = xcr0();
    const bool ymm_os = (x & 0x6) == 0x6;                 // SSE + AVX state
    const bool zmm_os = (x & 0xE6) == 0xE6;               // + opmask, ZMM_Hi256, Hi16_ZMM
    if (__get_cpuid_max(0, nullptr) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2f = b & (1u << 5), avx512f = b & (1u << 16);
    avx2 = ymm_os && avx2f && fma;
    avx512 = avx2 && zmm_os && avx512f;
  }
};
const X86Features& x86() {
  static const X86Features f;
  return f;
}
#endif

}  // namespace

const char* isa_name(Isa i) {
  switch (i) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Neon: return "neon";
    default: return "scalar";
  }
}

bool isa_available(Isa i) { return kernels_for(i) != nullptr; }

const Kernels* kernels_for(Isa i) {
  switch (i) {
    case Isa::Scalar: return kernels_scalar();
#if defined(BORT_X86)
    case Isa::Avx2: return x86().avx2 ? kernels_avx2() : nullptr;
    case Isa::Avx512: return x86().avx512 ? kernels_avx512() : nullptr;
#else
    case Isa::Avx2: return nullptr;
    case Isa::Avx512: return nullptr;
#endif
    case Isa::Neon: return kernels_neon();
  }
  return nullptr;
}

const Kernels* active_kernels(const char** err) {
  static std::once_flag once;
  static const Kernels* table = nullptr;
  static std::string error;
  std::call_once(once, [] {
    const char* env = std::getenv("BORT_ISA");
    if (env && *env) {
      Isa want;
      if (!std::strcmp(env, "scalar")) want = Isa::Scalar;
      else if (!std::strcmp(env, "avx2")) want = Isa::Avx2;
      else if (!std::strcmp(env, "avx512")) want = Isa::Avx512;
      else if (!std::strcmp(env, "neon")) want = Isa::Neon;
      else {
        error = std::string("BORT_ISA='") + env + "' is not one of scalar, avx2, avx512, neon";
        return;
      }
      table = kernels_for(want);
      if (!table) error = std::string("BORT_ISA=") + env + " was requested but this CPU (or this build) does not support it";
      return;
    }
    for (Isa i : {Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar}) {
      if ((table = kernels_for(i))) break;
    }
  });
  if (!table && err) *err = error.c_str();
  return table;
}

}  // namespace bort
