// Run-time choice of the int8 GEMM path: AVX-512 VNNI (cpuid leaf 7: AVX512_VNNI + AVX512BW, on top of
// the AVX-512 state check of dispatch.cpp), AVX-VNNI (cpuid leaf 7 subleaf 1: AVX_VNNI, on top of the
// AVX2 check), AVX2, NEON with the dot-product extension (HWCAP_ASIMDDP) or without, scalar.
// BORT_QISA=scalar|avx2|avxvnni|avx512vnni|neon|neondot forces one.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "kernels.h"
#include "qgemm.h"

#if defined(__x86_64__) || defined(_M_X64)
#define BORT_QX86 1
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace bort {

#if !defined(BORT_QX86)
const QKernels* qkernels_avx2() { return nullptr; }
const QKernels* qkernels_avxvnni() { return nullptr; }
const QKernels* qkernels_avx512vnni() { return nullptr; }
#endif
#if !defined(__aarch64__) || defined(BORT_NO_NEON)
const QKernels* qkernels_neon() { return nullptr; }
const QKernels* qkernels_neondot() { return nullptr; }
#endif

namespace {

bool has_avx512vnni() {
#if defined(BORT_QX86)
  if (!isa_available(Isa::Avx512)) return false;
  unsigned a, b, c, d;
  __cpuid_count(7, 0, a, b, c, d);
  return (b & (1u << 30)) && (c & (1u << 11));  // AVX512BW, AVX512_VNNI
#else
  return false;
#endif
}

bool has_avxvnni() {
#if defined(BORT_QX86)
  if (!isa_available(Isa::Avx2)) return false;
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 1, a, b, c, d);
  return (a & (1u << 4)) != 0;  // AVX_VNNI
#else
  return false;
#endif
}

bool has_neondot() {
#if defined(__aarch64__) && defined(__linux__) && !defined(BORT_NO_NEON)
  return (getauxval(AT_HWCAP) & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
#else
  return false;
#endif
}

}  // namespace

const char* qisa_name(QIsa i) {
  switch (i) {
    case QIsa::Avx2: return "avx2";
    case QIsa::AvxVnni: return "avxvnni";
    case QIsa::Avx512Vnni: return "avx512vnni";
    case QIsa::Neon: return "neon";
    case QIsa::NeonDot: return "neondot";
    default: return "scalar";
  }
}

const QKernels* qkernels_for(QIsa i) {
  switch (i) {
    case QIsa::Scalar: return qkernels_scalar();
    case QIsa::Avx2: return isa_available(Isa::Avx2) ? qkernels_avx2() : nullptr;
    case QIsa::AvxVnni: return has_avxvnni() ? qkernels_avxvnni() : nullptr;
    case QIsa::Avx512Vnni: return has_avx512vnni() ? qkernels_avx512vnni() : nullptr;
    case QIsa::Neon: return qkernels_neon();
    case QIsa::NeonDot: return has_neondot() ? qkernels_neondot() : nullptr;
  }
  return nullptr;
}

const QKernels* qkernels_active(const char** err) {
  static std::once_flag once;
  static const QKernels* table = nullptr;
  static std::string error;
  std::call_once(once, [] {
    const char* env = std::getenv("BORT_QISA");
    if (env && *env) {
      for (QIsa i : {QIsa::Scalar, QIsa::Avx2, QIsa::AvxVnni, QIsa::Avx512Vnni, QIsa::Neon, QIsa::NeonDot}) {
        if (!std::strcmp(env, qisa_name(i))) {
          table = qkernels_for(i);
          if (!table) error = std::string("BORT_QISA=") + env + " was requested but this CPU (or this build) does not support it";
          return;
        }
      }
      error = std::string("BORT_QISA='") + env + "' is not one of scalar, avx2, avxvnni, avx512vnni, neon, neondot";
      return;
    }
    for (QIsa i : {QIsa::Avx512Vnni, QIsa::AvxVnni, QIsa::Avx2, QIsa::NeonDot, QIsa::Neon, QIsa::Scalar}) {
      if ((table = qkernels_for(i))) break;
    }
  });
  if (!table && err) *err = error.c_str();
  return table;
}

}  // namespace bort
