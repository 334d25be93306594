// Training of the encoder with its MLM head (post-LN BERT, erf GELU): forward with saved activations,
// backward through every layer, global-norm clipping, AdamW with warm-up + linear decay, fp32 weights.
// The layer stack may also hold frozen predecessor layers of their own shapes (BERT-of-Theseus module
// replacing): each batch names the route, the stack layers it runs in order.
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
  // Embeddings and MLM head ("shared": the part a module-replacing student keeps from its teacher) get
  // no gradient and no update for updates t <= sharedFrozenUntil; afterwards their Adam bias
  // correction counts their own updates (t - sharedFrozenUntil), as if their optimizer started then.
  int64_t sharedFrozenUntil = 0;
  // Hidden size of the teacher states the hidden-state distillation term compares with (TrainBatch::
  // teacherHidden). When it is > 0 and differs from the student's hidden size, a learned projection
  // hidden_proj [hidden, hiddenTarget] (initialised by the caller, trained with the matrices, part of
  // params() and weight_names() but not of the model) maps the student's states onto the teacher's.
  int hiddenTarget = 0;
};

// The shape of one encoder layer. The trainable layers all have the configuration's; predecessor
// layers have their own (the teacher's heads, head size, FFN width, score scale, LayerNorm epsilons).
struct LayerShape {
  int heads = 0, headSize = 0, intermediate = 0;
  float scoreScale = 1.0f, lnEps1 = 1e-12f, lnEps2 = 1e-12f;
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
  // The stack layers this batch runs, in order: 0 .. layers-1 the trainable layers, layers + j the
  // frozen predecessor layer j; each at most once. null = the trainable layers in order.
  const int32_t* route = nullptr;
  int nroute = 0;
  // Intermediate distillation terms (masked-LM only). Entry i pairs the output of the layer at route
  // position match[i] (0-based; each at most once) with the teacher's arrays' entry i:
  //   teacherHidden [nmatch, batch*seq, hiddenTarget or hidden]: that teacher layer's output;
  //   teacherAttention [nmatch, batch, seq, seq]: its attention probabilities averaged over its heads.
  // loss += hiddenWeight * mean_i MSE(h_i (hidden_proj), teacher_i) over the real tokens' values
  //       + attentionWeight * mean_i (mean over real query rows of KL(teacher row || student row)),
  // the student's row being its probabilities averaged over its own heads (so head counts may differ).
  const int32_t* match = nullptr;
  int nmatch = 0;
  const float* teacherHidden = nullptr;     // null = no hidden-state term
  const float* teacherAttention = nullptr;  // null = no attention term
  float hiddenWeight = 0.0f, attentionWeight = 0.0f;
};

struct StepResult {
  double loss = 0, mlm = 0, kl = 0;  // loss as above; mlm and kl are the unweighted means (mlm: the class CE when classifying)
  double hidden = 0, attention = 0;  // the intermediate terms' unweighted means (TrainBatch::match)
  double gradNorm = 0;               // global norm before clipping
  float lr = 0;                      // learning rate of this update (0 for compute_gradients)
  int64_t step = 0;                  // updates done after this call
};

class Trainer {
 public:
  // Takes the same configuration and weight names as Encoder. With config.classifierLabels (and the
  // pooler) it trains the classification head (cls_head.h) and no MLM head; otherwise config.mlm must
  // be on (decoder_w is read only when !opt.tiedDecoder). Copies the weights. Throws ConfigError.
  // `predecessors` (masked-LM only): frozen layers appended to the stack (same hidden size), their
  // weights by the engine's layer names with "pred." in front and their own index (pred.q_w.0,
  // pred.ln2_b.3, ...): they run when a route names them and pass dX back, but get no gradient and no
  // update, and are not part of params()/moment1()/moment2() or weight_names().
  Trainer(const EncoderConfig& cfg, const WeightLookup& weights, const Kernels* k, const TrainOptions& opt,
          const std::vector<LayerShape>& predecessors = {});
  ~Trainer();

  // Checks shapes and ranges (InputTypeError / InputRangeError).
  void validate(const TrainBatch& b) const;
  // Forward and backward: fills the gradients; no update.
  StepResult compute_gradients(const TrainBatch& b);
  // compute_gradients, clipping, one AdamW update (of the trainable layers the batch's route ran, and of
  // the embeddings and head unless frozen; Adam's bias correction counts every update).
  StepResult step(const TrainBatch& b);

  float lr_at(int64_t t) const;  // learning rate of update t (1-based)
  float head_lr_at(int64_t t) const;  // the same schedule for the classification head's peak (headLr)
  bool classifier() const { return cls_; }
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }
  const EncoderConfig& config() const { return cfg_; }
  const TrainOptions& options() const { return opt_; }
  const Kernels& kernels() const { return *k_; }

  // Weights and gradients by the engine's names (q_w.0, word_emb, ...); read_weight and write_weight
  // also take the predecessors' names (pred.q_w.0, ...).
  std::vector<std::string> weight_names() const;
  std::vector<std::string> predecessor_names() const;
  int predecessor_count() const { return (int)layers_.size() - cfg_.layers; }
  size_t weight_size(const std::string& name) const;  // 0 when unknown
  void read_weight(const std::string& name, float* out) const;
  void write_weight(const std::string& name, const float* in);
  void read_grad(const std::string& name, float* out) const;

  // Optimizer state for checkpoints: parameters, first and second moments, each param_count() floats
  // (the trainable parameters only).
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
    bool shared = false;  // embeddings or MLM head (TrainOptions::sharedFrozenUntil)
    bool frozen = false;  // a predecessor's: never updated, no gradient storage
    int layer = -1;       // index into layers_ of the layer it belongs to (-1: embeddings or head)
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
    LayerShape shape;
    bool frozen = false;
  };
  struct Saved {  // per layer, from the forward
    Scratch qkv, ctx, xhat1, r1, u, xhat2, r2;
  };

  size_t add_slot(const std::string& name, int rows, int cols, bool decay);
  void add_layer(const std::string& prefix, int index, const LayerShape& shape, bool frozen);
  std::vector<std::string> expand_names(const std::vector<std::string>& order) const;
  bool shared_trainable(int64_t t) const { return t > opt_.sharedFrozenUntil; }
  const Slot* find(const std::string& name, int* col0, int* ncols) const;
  void copy_cols(const std::string& name, const float* base, float* out) const;

  // parallel building blocks
  void matmul(const float* A, size_t lda, const float* Bp, float* C, size_t ldc, int M, int N, int K, Epi epi,
              const float* bias, const float* R, size_t ldr);
  const float* pack(const float* W, int K, int N);     // B = W [K,N]
  const float* pack_t(const float* W, int K, int N);   // B = W^T [N,K] (W is [K,N] row-major)
  void linear_fwd(const float* X, size_t ldx, int M, const Lin& L, float* Y, Epi epi, const float* R = nullptr);
  // dX = dY W^T (+ R); dW += X^T dY; db += colsum(dY) (the last two only when `grads`)
  void linear_bwd(const float* X, int M, const Lin& L, const float* dY, float* dX, const float* R, bool grads = true);
  void weight_grad(const float* X, int M, int K, const float* dY, int N, float* dW);  // dW = X^T dY
  void colsum_add(const float* Y, int M, int N, float* out, const float* mulby = nullptr);
  void ln_rows_fwd(float* y, float* xhat, float* rstd, const float* x, int M, size_t g, size_t b, float eps);
  void ln_rows_bwd(float* dx, const float* dy, const float* xhat, const float* rstd, int M, size_t g, size_t b,
                   bool grads = true);
  void affine_rows(float* y, const float* xhat, int M, size_t g, size_t b);  // y = xhat*g + b
  template <class Fn>
  void rows_parallel(int M, Fn&& fn);

  double forward_backward(const TrainBatch& b, double* mlm, double* kl, double* hid, double* att);
  // Intermediate terms. attention_probs_loss: the route position l's head-averaged probabilities
  // against the teacher's entry i; the loss, and its dL/dP (per head) into attd_[i]. hidden_state_loss
  // (in the backward, once the gradients are zeroed): layer output h against entry i; adds dL/dh to dx
  // and the projection's gradient. Both return the unweighted term of entry i.
  double attention_probs_loss(const TrainBatch& b, int i, int l, int real);
  double hidden_state_loss(const TrainBatch& b, int i, int l, int real, float* dx);
  // The heads on the final hidden state x [batch*seq, H]: loss, head gradients, dL/dx into dx (zeroed
  // here; gradients zeroed here too).
  double mlm_head(const TrainBatch& b, float* x, float* dx, bool shared, double* mlm, double* kl);
  double cls_head(const TrainBatch& b, const float* x, float* dx, double* ce, double* kl);

  EncoderConfig cfg_;
  TrainOptions opt_;
  const Kernels* k_;
  const TrainKernels* tk_;
  std::unique_ptr<ThreadPool> pool_;
  int64_t step_ = 0;

  std::map<std::string, Slot> slots_;
  std::vector<std::string> order_, pred_order_;
  size_t nparams_ = 0;  // trainable parameters (g_, m_, v_ hold these; p_ holds the predecessors' after them)
  size_t nalloc_ = 0;   // all parameters, predecessors' included
  FloatBuf p_, g_, m_, v_;
  size_t word_, pos_, type_, embg_, embb_, mlmg_, mlmb_;
  size_t proj_ = 0;   // hidden_proj [hidden, hiddenTarget] when TrainOptions::hiddenTarget asks for one
  bool proj_on_ = false;
  Lin mlm_dense_, decoder_;  // decoder_.w unused when tied
  bool cls_ = false;
  size_t poolw_ = 0, poolb_ = 0, clsw_ = 0, clsb_ = 0;
  std::vector<LayerSlots> layers_;  // the trainable layers, then the predecessors
  std::vector<int> route_;          // this step's stack layers, in order

  std::vector<Saved> saved_;
  Scratch xhat_e_, r_e_, madd_, x_, t_, gi_, dx_, dt_, di_, dqkv_, dctx_, tr_, packw_, packd_, zeros_;
  Scratch hsel_, hu_, xhatm_, rm_, nrm_, dh_, logits_, rowloss_, colsum_, pooled_;
  std::vector<Scratch> ws_, aws_, lossws_;
  Scratch hbuf_, ybuf_, projg_, pbar_, hrow_;
  std::vector<Scratch> attd_, probs_;  // per match entry: dL/dP [batch, seq, seq]; per thread: one head's P
};

}  // namespace bort
