// Kernel interface shared by every ISA translation unit and by the portable engine code.
//
// Each ISA file (kernels_scalar.cpp, kernels_avx2.cpp, kernels_avx512.cpp, kernels_neon.cpp) fills one
// `Kernels` table with its own compiled code; dispatch.cpp picks one table at run time (cpuid + XCR0
// on x86) and everything else calls through it. Nothing in this header needs ISA flags.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bort {

// What the GEMM does to a finished output tile before storing it.
enum class Epi : int {
  None = 0,      // C = A·B
  Bias = 1,      // C = A·B + bias
  BiasGelu = 2,  // C = gelu_erf(A·B + bias)
  BiasResid = 3, // C = A·B + bias + R
  BiasTanh = 4,  // C = tanh(A·B + bias)
};

// Arguments of one GEMM C[M,N] = epi(A[M,K] · B[K,N]) where B is packed (see pack_b below).
struct GemmArgs {
  const float* A = nullptr;   // row-major, row stride lda
  size_t lda = 0;
  const float* B = nullptr;   // packed by pack_b: [K/KC blocks][ceil(N/NR) panels][kc][NR], zero padded in N
  float* C = nullptr;         // row-major, row stride ldc
  size_t ldc = 0;
  int M = 0, N = 0, K = 0;
  Epi epi = Epi::None;
  const float* bias = nullptr; // length >= round_up(N, NR) (padding read, never stored)
  const float* R = nullptr;    // residual, row stride ldr (BiasResid)
  size_t ldr = 0;
  // Optional: A already packed by pack_a ([ceil(M/MR)][K][MR]); then tiles must start at a multiple
  // of MR and A/lda are not read.
  const float* Ap = nullptr;
};

struct Kernels {
  const char* name;  // "avx512", "avx2", "neon", "scalar"
  int MR;            // micro-tile rows
  int NR;            // micro-tile columns == packed panel width
  int KC;            // K block
  int MC;            // rows of A packed at a time (the L2 block); gemm_tile's workspace is MC*KC floats
  bool direct_a;     // gemm_tile reads an unpacked A in place (else it packs it into ws per K block)

  // Computes rows [m0,m1) and columns [n0,n1) of the GEMM (n0 a multiple of NR; n1 a multiple of NR
  // or N). Blocks K by KC internally; the epilogue is applied on the last K block. Unless GemmArgs::Ap
  // gives A prepacked, A is read in place (direct_a) or packed into `ws`, the calling thread's
  // workspace of at least MC*KC floats.
  void (*gemm_tile)(const GemmArgs& g, int m0, int m1, int n0, int n1, float* ws);

  // Packs rows [m0,m1) of A (m0 a multiple of MR) into dst laid out [ceil(M/MR)][K][MR]
  // (zero rows past m1), the layout gemm_tile reads through GemmArgs::Ap.
  void (*pack_a)(const float* A, size_t lda, int m0, int m1, int K, float* dst);

  // y[i] = LN(x[i]) for one row of n: (x-mean)/sqrt(var+eps)*g + b, biased variance. y may equal x.
  void (*layernorm)(float* y, const float* x, const float* g, const float* b, int n, float eps);

  // In place over one row of scores s[0..n): t = s*scale + madd[j]; s = softmax(t).
  void (*softmax)(float* s, int n, float scale, const float* madd);

  // Elementwise, in place (used by tests and the odd non-fused path).
  void (*gelu)(float* x, size_t n);
  void (*tanh)(float* x, size_t n);
  void (*exp)(float* x, size_t n);
  void (*erf)(float* x, size_t n);

  // y = a + b + c (c may be null), n floats; the embedding sum.
  void (*add3)(float* y, const float* a, const float* b, const float* c, int n);

  // softmax as above, quantized for int8 attention (qattention.h): with t as above and
  // e_j = exp(t_j - max t) in [0, 1], q[j] = 127 · e_j rounded to nearest, ties to even (0 for NaN), q[n..round4(n)) = 0,
  // and *qscale = 1 / (127 · Σ e), so q[j] · *qscale = e_j / Σ e (the largest e_j is exactly 1: the
  // row's own per-row int8 scale, without another pass). With normalize, s becomes the float32
  // probabilities as softmax gives them; else s is left holding e.
  void (*softmax_q8)(float* s, int n, float scale, const float* madd, int8_t* q, float* qscale, bool normalize);
};

// One table per compiled ISA (null when the ISA file was not compiled for this target).
const Kernels* kernels_scalar();
const Kernels* kernels_avx2();
const Kernels* kernels_avx512();
const Kernels* kernels_neon();

// ---- dispatch (dispatch.cpp) ----
enum class Isa { Scalar, Avx2, Avx512, Neon };
const char* isa_name(Isa i);
// Whether this CPU (and OS) can run the ISA, and the ISA file was compiled in.
bool isa_available(Isa i);
// Kernel table for the ISA, or null when unavailable.
const Kernels* kernels_for(Isa i);
// The active table: chosen once (best available, or BORT_ISA). Returns null and sets *err when
// BORT_ISA names an unknown or unavailable ISA.
const Kernels* active_kernels(const char** err);

// ---- packing (pack.cpp, portable) ----
// Packed layout of a [K,N] matrix: K is cut in blocks of KC rows (the last may be shorter); inside a
// block, the panels of NR columns follow each other, each [kc][NR]. So the panel for (k0, column n)
// starts at k0*Npad + (n/NR)*kc*NR with Npad = N rounded up to NR, and a GEMM task that sweeps its
// panels for one K block reads one contiguous stream (friendly to the hardware prefetchers).
// Size in floats of a packed [K,N] matrix for panel width NR.
inline size_t packed_size(int K, int N, int NR) {
  return (size_t)((N + NR - 1) / NR) * (size_t)K * (size_t)NR;
}
// Packs the columns of several row-major [K, n_i] matrices side by side (e.g. Q|K|V) as one [K, sum n_i]
// matrix, zero-padding the last panel.
struct PackSeg {
  const float* p;  // row-major [K, n]
  int n;           // columns
  size_t ld;       // row stride (>= n)
};
void pack_b(float* dst, int K, const PackSeg* segs, int nsegs, int NR, int KC);
// The same for panels [p0, p1) only (so packing can be split across threads).
void pack_b_panels(float* dst, int K, const PackSeg* segs, int nsegs, int NR, int KC, int p0, int p1);
// Transposed pack: B[k][j] = src[j*ld + k] for j in [0,N), k in [0,K) (K rows of attention keys).
void pack_bt(float* dst, int K, int N, const float* src, size_t ld, int NR, int KC);

}  // namespace bort
