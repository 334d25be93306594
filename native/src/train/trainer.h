// Training of the encoder with its MLM head (post-LN BERT, erf GELU): forward with saved activations,
// backward through every layer, global-norm clipping, AdamW with warm-up + linear decay, fp32 weights.
// No N-API here, so the C++ tests drive it directly; addon.cpp wraps it for JS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../encoder.h"
#include "../pool.h"
#include "train_kernels.h"

namespace bort {

struct TrainOptions {
  float lr = 5e-4f;  // peak learning rate
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f;
  float weightDecay = 0.01f;  // decoupled; applied to matrices and embedding tables, not to biases or LayerNorm
  float clipNorm = 1.0f;      // global gradient norm bound; <= 0 turns clipping off
  int warmupSteps = 0;        // lr_t = lr * t / warmup for t <= warmup ...
  int totalSteps = 1;         // ... then lr * (total - t) / (total - warmup), never below 0
  bool tiedDecoder = true;    // MLM decoder weight = word table transposed (no decoder_w of its own)
  float headLr = -1.0f;       // peak learning rate of the classification head (cls_head.h); < 0 = lr
};

struct TrainBatch {
  const int32_t* ids = nullptr;    // [batch, seq]
  const int32_t* types = nullptr;  // null = all zeros
  const int32_t* mask = nullptr;   // attention mask, null = all ones
  int batch = 0, seq = 0;
  const int32_t* positions = nullptr;  // [npos] token indices (b * seq + s) where the loss is taken
  int npos = 0;
  const int32_t* labels = nullptr;  // [npos] true token ids for the MLM term; null = no MLM term
  const float* teacher = nullptr;   // [npos, vocab] teacher logits for the KL term; null = no KL term
  // loss = mlmWeight * mean CE(student, label) + klWeight * T^2 * mean KL(softmax(t/T) || softmax(s/T))
  float mlmWeight = 0.1f, klWeight = 0.9f, temperature = 2.0f;
  // Classification (a config with classifierLabels): positions, labels and teacher above are unused;
  // loss = ceWeight * mean CE(classes) + klWeight * T^2 * mean KL over the sequences (cls_head.h).
  const int32_t* classes = nullptr;      // [batch] true class of each sequence; null = no CE term
  const float* classTeacher = nullptr;   // [batch, labels] teacher logits; null = no KL term
  float ceWeight = 1.0f;
};

struct StepResult {
  double loss = 0, mlm = 0, kl = 0;  // loss as above; mlm and kl are the unweighted means (mlm: the class CE when classifying)
  double gradNorm = 0;               // global norm before clipping
  float lr = 0;                      // learning rate of this update (0 for compute_gradients)
  int64_t step = 0;                  // updates done after this call
};

class Trainer {
 public:
  // Takes the same configuration and weight names as Encoder. With config.classifierLabels (and the
  // pooler) it trains the classification head (cls_head.h) and no MLM head; otherwise config.mlm must
  // be on (decoder_w is read only when !opt.tiedDecoder). Copies the weights. Throws ConfigError.
  Trainer(const EncoderConfig& cfg, const WeightLookup& weights, const Kernels* k, const TrainOptions& opt);
  ~Trainer();

  // Checks shapes and ranges (InputTypeError / InputRangeError).
  void validate(const TrainBatch& b) const;
  // Forward and backward: fills the gradients; no update.
  StepResult compute_gradients(const TrainBatch& b);
  // compute_gradients, clipping, one AdamW update.
  StepResult step(const TrainBatch& b);

  float lr_at(int64_t t) const;  // learning rate of update t (1-based)
  float head_lr_at(int64_t t) const;  // the same schedule for the classification head's peak (headLr)
  bool classifier() const { return cls_; }
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }
  const EncoderConfig& config() const { return cfg_; }
  const TrainOptions& options() const { return opt_; }
  const Kernels& kernels() const { return *k_; }

  // Weights and gradients by the engine's names (q_w.0, word_emb, ...).
  std::vector<std::string> weight_names() const;
  size_t weight_size(const std::string& name) const;  // 0 when unknown
  void read_weight(const std::string& name, float* out) const;
  void write_weight(const std::string& name, const float* in);
  void read_grad(const std::string& name, float* out) const;

  // Optimizer state for checkpoints: parameters, first and second moments, each param_count() floats.
  size_t param_count() const { return nparams_; }
  float* params() { return p_.get(); }
  float* moment1() { return m_.get(); }
  float* moment2() { return v_.get(); }

  // Floats kept from the forward for the backward, per token at this sequence length (and per
  // loss position for the head): what bounds activation memory.
  size_t saved_floats_per_token(int seq) const;
  size_t saved_floats_per_position() const;

 private:
  struct Slot {
    size_t off = 0, len = 0;
    int rows = 0, cols = 0;
    bool decay = false;
    bool head = false;  // classification head: trained at headLr
  };
  struct Scratch {
    FloatBuf p;
    size_t n = 0;
    float* get(size_t want);
  };
  struct Lin {
    size_t w = 0, b = 0;  // offsets into the flat arrays
    int K = 0, N = 0;
  };
  struct LayerSlots {
    Lin qkv, o, in, out;
    size_t ln1g, ln1b, ln2g, ln2b;
  };
  struct Saved {  // per layer, from the forward
    Scratch qkv, ctx, xhat1, r1, u, xhat2, r2;
  };

  size_t add_slot(const std::string& name, int rows, int cols, bool decay);
  const Slot* find(const std::string& name, int* col0, int* ncols) const;
  void copy_cols(const std::string& name, const float* base, float* out) const;

  // parallel building blocks
  void matmul(const float* A, size_t lda, const float* Bp, float* C, size_t ldc, int M, int N, int K, Epi epi,
              const float* bias, const float* R, size_t ldr);
  const float* pack(const float* W, int K, int N);     // B = W [K,N]
  const float* pack_t(const float* W, int K, int N);   // B = W^T [N,K] (W is [K,N] row-major)
  void linear_fwd(const float* X, size_t ldx, int M, const Lin& L, float* Y, Epi epi, const float* R = nullptr);
  // dX = dY W^T (+ R); dW += X^T dY; db += colsum(dY)
  void linear_bwd(const float* X, int M, const Lin& L, const float* dY, float* dX, const float* R);
  void weight_grad(const float* X, int M, int K, const float* dY, int N, float* dW);  // dW = X^T dY
  void colsum_add(const float* Y, int M, int N, float* out, const float* mulby = nullptr);
  void ln_rows_fwd(float* y, float* xhat, float* rstd, const float* x, int M, size_t g, size_t b, float eps);
  void ln_rows_bwd(float* dx, const float* dy, const float* xhat, const float* rstd, int M, size_t g, size_t b);
  void affine_rows(float* y, const float* xhat, int M, size_t g, size_t b);  // y = xhat*g + b
  template <class Fn>
  void rows_parallel(int M, Fn&& fn);

  double forward_backward(const TrainBatch& b, double* mlm, double* kl);
  // The heads on the final hidden state x [batch*seq, H]: loss, head gradients, dL/dx into dx (zeroed
  // here; gradients zeroed here too).
  double mlm_head(const TrainBatch& b, float* x, float* dx, double* mlm, double* kl);
  double cls_head(const TrainBatch& b, const float* x, float* dx, double* ce, double* kl);

  EncoderConfig cfg_;
  TrainOptions opt_;
  const Kernels* k_;
  const TrainKernels* tk_;
  std::unique_ptr<ThreadPool> pool_;
  int64_t step_ = 0;

  std::map<std::string, Slot> slots_;
  std::vector<std::string> order_;
  size_t nparams_ = 0;
  FloatBuf p_, g_, m_, v_;
  size_t word_, pos_, type_, embg_, embb_, mlmg_, mlmb_;
  Lin mlm_dense_, decoder_;  // decoder_.w unused when tied
  bool cls_ = false;
  size_t poolw_ = 0, poolb_ = 0, clsw_ = 0, clsb_ = 0;
  std::vector<LayerSlots> layers_;

  std::vector<Saved> saved_;
  Scratch xhat_e_, r_e_, madd_, x_, t_, gi_, dx_, dt_, di_, dqkv_, dctx_, tr_, packw_, packd_, zeros_;
  Scratch hsel_, hu_, xhatm_, rm_, nrm_, dh_, logits_, rowloss_, colsum_, pooled_;
  std::vector<Scratch> ws_, aws_, lossws_;
};

}  // namespace bort
