// The BERT encoder (post-LN, erf GELU) on the packed kernels; no N-API here so the C++ tests can
// drive it directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "qattention.h"
#include "qlinear.h"

namespace bort {

struct PackPlan;  // packing.h

struct EncoderConfig {
  int layers = 0, heads = 0, headSize = 0, hidden = 0, intermediate = 0, vocab = 0, maxPositions = 0, typeVocab = 0;
  float scoreScale = 1.0f, maskValue = -10000.0f, embLnEps = 1e-12f;
  // false: scores += (1 - mask) * maskValue (BERT). true: the scores of keys with mask 0 are replaced
  // by maskValue (Where(mask == 0, maskValue, scores), DistilBERT); maskValue may then be -infinity,
  // and a sequence with no unmasked key gives NaN outputs, as onnxruntime computes it.
  bool maskSelect = false;
  std::vector<float> lnEps;  // 2 per layer
  bool pooler = false;
  bool poolerRelu = false;  // the pooler's activation: ReLU (DistilBERT's pre_classifier) instead of tanh
  bool mlm = false;
  float mlmLnEps = 1e-12f;
  int classifierLabels = 0;  // 0 = no classifier
  int tokenLabels = 0;       // per-token classifier on the final hidden states (0 = none)
  int threads = 1;
  // Quantize at load (qlinear.h): the layer projections and the masked-LM decoder become int8 GEMMs
  // (per output column; the pooler too), the word- and position-embedding tables int8 per row
  // (dequantized on gather; the few token-type rows stay float32). Weights given
  // as int8 (Int8Lookup) run int8 whatever this says, with their own scales.
  bool int8 = false;
  // With int8 layers: attention's Q·Kᵀ and P·V as int8 GEMMs too (qattention.h).
  bool int8Attention = false;
};

// Thrown for a bad configuration or weight (-> TypeError) or bad inputs (-> RangeError).
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct InputRangeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct InputTypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Looks a weight up by name; returns its data and sets *len, or returns null when absent.
using WeightLookup = std::function<const float*(const std::string& name, size_t* len)>;
// Looks an int8 weight up by name (a quantized file's own weights: "<linear>_w..." int8 [K][N] with
// float scales "<linear>_ws..." [N] in the float lookup); null when absent.
using Int8Lookup = std::function<const int8_t*(const std::string& name, size_t* len)>;

// Buffers of 1 MiB and more are mapped directly (page exact, returned to the OS on free, transparent
// huge pages requested: the weights stream through the TLB every run); smaller ones are aligned malloc.
struct AlignedFree {
  size_t mapped = 0;  // bytes mapped, 0 = malloc'd
  void operator()(float* p) const;
};
using FloatBuf = std::unique_ptr<float[], AlignedFree>;
FloatBuf alloc_floats(size_t n);

struct RunInputs {
  const int32_t* ids = nullptr;
  const int32_t* mask = nullptr;   // null = all ones
  const int32_t* types = nullptr;  // null = all zeros
  const int32_t* positions = nullptr;  // rows of the position table, [B,S]; null = 0..seq-1 in every sequence
  int batch = 0, seq = 0;
};

struct RunOutputs {
  float* hidden = nullptr;  // [B,S,H] (required)
  float* pooled = nullptr;  // [B,H] when config.pooler
  float* mlm = nullptr;     // [B,S,V] when config.mlm
  float* cls = nullptr;     // [B,L] when config.classifierLabels
  float* tok = nullptr;     // [B,S,L] when config.tokenLabels
  // Intermediates, for distillation (optional; asking for either runs the padded path):
  float* layers = nullptr;  // [layers,B,S,H] every layer's output (the last one equals hidden)
  float* attn = nullptr;    // [layers,B,S,S] each layer's attention probabilities averaged over its heads
};

// Padding is skipped: when the attention mask marks padding (0s after, or between, a sequence's
// tokens, and position 0 is a token), run() packs the batch's real tokens into one [tokens, H]
// matrix, runs embeddings, GEMMs, LayerNorms and FFN on it, and attention per sequence over its own
// tokens only (packing.h). Outputs at real positions equal the padded computation's up to the order
// of float sums (a run-time bound proves the masked keys would add exactly 0; when it cannot, the
// batch runs padded). Positions whose mask is 0 come back as zeros in `hidden` and `mlm` on every
// path (onnxruntime returns computed values there); `pooled` and `cls` read position 0 and are the
// padded computation's. BORT_PACK=0 in the environment turns packing off (benchmarks, tests).
class Encoder {
 public:
  // Validates the configuration, packs every weight (copying from the lookup's memory, which may be
  // released afterwards). Throws ConfigError.
  Encoder(const EncoderConfig& cfg, const WeightLookup& weights, const Kernels* kernels, const Int8Lookup& int8 = nullptr);
  ~Encoder();

  const EncoderConfig& config() const { return cfg_; }
  const Kernels& kernels() const { return *k_; }

  // Checks shapes and index ranges (throws InputRangeError / InputTypeError); safe from any thread.
  void validate(const RunInputs& in) const;
  // Runs one forward pass; serialised on this encoder. Throws std::runtime_error when closed.
  void run(const RunInputs& in, const RunOutputs& out);
  // Frees the weights and the pool (at the end of a run in flight, without waiting for it); later
  // runs throw.
  void close();
  bool closed() const;
  // True once the weights, scratch and pool are freed (after close(), at the end of a run in flight).
  bool released() const;
  void set_threads(int n);
  int threads() const;

  size_t packed_bytes() const { return packed_bytes_; }

  // Calibration recorder (off by default; one flag test per GEMM when off): while on, each run appends,
  // for every linear it computes, the max |x| of each input row (the rows the GEMM reads: real tokens
  // only when the run packs, the [CLS] rows for the pooler). Slots: layer l: 4l Q/K/V (one input),
  // 4l+1 attention output, 4l+2 feed-forward input, 4l+3 feed-forward output; then 4L pooler, 4L+1
  // masked-LM transform, 4L+2 masked-LM decoder, 4L+3 classifier, 4L+4 per-token classifier.
  // Both wait for a run in flight.
  void record_input_maxima(bool on);
  // The row maxima recorded since the last take, one vector per slot; clears them.
  std::vector<std::vector<float>> take_input_maxima();
  int input_maxima_slots() const { return 4 * cfg_.layers + 5; }

  // Tests only: called at the end of every run, after the run has decided whether it frees the
  // encoder (a close() seen) and before it lets other calls in; a test can close() meanwhile.
  std::function<void()> run_end_hook_for_tests;
  size_t param_bytes() const { return param_bytes_; }
  // Whether the last run packed the real tokens (tests and benchmarks).
  bool last_run_packed() const { return last_run_packed_; }
  // Packing on (default unless BORT_PACK=0) or off; set before a run, not during one.
  bool packing = true;

 private:
  struct Linear {
    FloatBuf w;  // packed [K,N]
    FloatBuf b;  // padded to a whole panel
    int K = 0, N = 0;
    std::unique_ptr<QLinear> q;  // set: int8 (w unused)
    int slot = -1;               // the calibration recorder's slot (record_input_maxima)
  };
  struct Layer {
    Linear qkv, o, in, out;
    FloatBuf ln1g, ln1b, ln2g, ln2b;
  };

  const float* need(const WeightLookup& w, const std::string& name, size_t len);
  FloatBuf copy_vec(const WeightLookup& w, const std::string& name, size_t len);
  Linear pack_linear(const WeightLookup& w, const std::vector<std::string>& wnames,
                     const std::vector<std::string>& bnames, int K, const std::vector<int>& ns, bool int8 = false);
  Linear pack_qlinear(Linear& L, const std::vector<PackSeg>& segs, const WeightLookup& w,
                      const std::vector<std::string>& bnames, const std::vector<int>& ns);
  Linear pack_bias(Linear& L, const WeightLookup& w, const std::vector<std::string>& bnames, const std::vector<int>& ns);
  const QKernels* need_qk();
  float static_input_scale(const WeightLookup& w, const std::vector<std::string>& wnames);
  void record_rows(const float* A, size_t lda, int M, int K, int slot);
  // Word + position (+ type) embedding of one token into y (the word row dequantized when int8).
  void embed_row(float* y, int id, int pos, const float* type_row) const;
  void gemm(const float* A, size_t lda, const Linear& L, float* C, size_t ldc, int M, Epi epi,
            const float* R = nullptr, size_t ldr = 0);
  void gemm_raw(const GemmArgs& g);
  // y = LN(x) per row; with `next` an int8 layer that reads y next, each row is also quantized for it
  // where it is written (prequantize), and gemm(y, next) skips its own quantization pass.
  void layernorm_rows(float* y, size_t ldy, const float* x, size_t ldx, int M, const float* g, const float* b, float eps,
                      const Linear* next = nullptr);
  // Readies qs_ for rows of A (row stride lda, M rows) quantized one by one for `next` and records it for
  // gemm(); false (nothing to do) when next is null or float32, or while recording calibration maxima.
  bool prequantize(const Linear* next, const float* A, size_t lda, int M);
  // avg: null, or [B,S,S] this layer's probabilities averaged over the heads (written, not accumulated)
  void attention(int B, int S, float* avg = nullptr);
  // One (sequence, head) of attention on thread tid's scratch, float32 or int8 (qattention.h) as the
  // encoder runs; attention() and attention_packed() both go through these. K and V of the head (row
  // stride ld; keep: null or S real-key flags); the scores of qb query rows into sc [qb][S]; one row's
  // softmax in place (r: its row in the block; with probs, sc keeps the float probabilities also on the
  // int8 path); the context P·V of the block into out (row stride ldo).
  bool int8_attention() const { return qk_ && cfg_.int8Attention; }
  void head_pack_kv(int tid, const float* k, const float* v, size_t ld, int S, const unsigned char* keep);
  void head_scores(int tid, const float* q, size_t ld, int qb, int S, float* sc);
  void head_softmax_row(int tid, float* row, int r, int qb, int S, const float* madd, bool probs);
  void head_context(int tid, const float* sc, int qb, int S, float* out, size_t ldo);
  // C[M,N] = A[M,K] · B (packed) in one float32 tile on thread tid's workspace (scores and P·V)
  void head_gemm(int tid, const float* A, size_t lda, const float* B, float* C, size_t ldc, int M, int N, int K);
  void nan_fully_masked(const RunInputs& in, const RunOutputs& out);
  void forward_padded(const RunInputs& in, const RunOutputs& out);
  // encoder_packed.cpp: false (nothing usable written) when a key bound cannot prove that the
  // padded computation's masked keys contribute exactly 0; the caller then runs padded.
  bool forward_packed(const RunInputs& in, const RunOutputs& out, const PackPlan& plan);
  bool attention_packed(const PackPlan& plan, int layer);
  void ensure_scratch(int B, int S);
  void release_locked();

  EncoderConfig cfg_;
  const Kernels* k_;
  mutable std::mutex mu_;        // held for a whole run (runs are serialised) and while freeing
  mutable std::mutex state_mu_;  // guards running_ / released_ and orders them with closed_
  std::unique_ptr<ThreadPool> pool_;
  std::atomic<bool> closed_{false};
  bool running_ = false;   // guarded by state_mu_
  bool released_ = false;  // guarded by state_mu_
  std::atomic<int> want_threads_{1};

  FloatBuf word_, pos_, type_, emb_g_, emb_b_;
  QTable word_q_, pos_q_;  // cfg_.int8: the word and position tables int8 per row (word_, pos_ then unused)
  Int8Lookup i8_;  // during construction only
  std::vector<Layer> layers_;
  Linear pooler_, mlm_dense_, decoder_, cls_, tok_;
  FloatBuf mlm_g_, mlm_b_;
  size_t packed_bytes_ = 0, param_bytes_ = 0;
  const QKernels* qk_ = nullptr;  // int8 path (cfg_.int8)
  QScratch qs_;
  struct Prequant {
    const Linear* L = nullptr;
    const float* A = nullptr;
    size_t lda = 0;
    int M = 0;
  };
  Prequant prequant_;  // the rows qs_ holds, quantized for gemm(A, L) (prequantize); cleared by every gemm
  bool recording_ = false;                    // record_input_maxima (guarded by mu_)
  std::vector<std::vector<float>> maxima_;    // per slot, recorded row maxima
  std::vector<double> key_bound_;  // [layers*heads] |key| bounds (packing.h)
  bool last_run_packed_ = false;

  // scratch, grown on demand, reused across runs
  struct Buf {
    FloatBuf p;
    size_t n = 0;
    float* get(size_t want);
  };
  Buf x_, tmp_, qkv_, ctx_, inter_, madd_, pooled_, apack_;
  std::vector<unsigned char> masked_;  // per token: the key is masked (select mode)
  std::vector<Buf> pk_, pv_, sc_, ws_;  // per thread
  std::vector<QAttnScratch> qas_;       // per thread (int8 attention)
  std::vector<unsigned char> keep_;     // per token: a real key (not padding), for int8 attention
};

}  // namespace bort
