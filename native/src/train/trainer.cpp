#include "trainer.h"

#include "attention.h"
#include "cls_head.h"

#include <cmath>
#include <cstring>

namespace bort {

namespace {
std::string at(const char* base, int l) { return std::string(base) + "." + std::to_string(l); }
int round_up(int x, int m) { return (x + m - 1) / m * m; }
int imin(int a, int b) { return a < b ? a : b; }
}  // namespace

float* Trainer::Scratch::get(size_t want) {
  if (want > n || !p) {
    p = alloc_floats(want);
    n = want;
  }
  return p.get();
}

size_t Trainer::add_slot(const std::string& name, int rows, int cols, bool decay) {
  Slot s;
  s.off = nalloc_;
  s.len = (size_t)rows * cols;
  s.rows = rows;
  s.cols = cols;
  s.decay = decay;
  // 16-float alignment of every slot: vector loads at the start of each row of a [*, 16k] matrix
  nalloc_ += (s.len + 15) / 16 * 16;
  slots_[name] = s;
  order_.push_back(name);
  return s.off;
}

// One layer's slots under `prefix` ("" trainable, "pred." a predecessor) and index.
void Trainer::add_layer(const std::string& prefix, int l, const LayerShape& sh, bool frozen) {
  const int H = cfg_.hidden, Wd = sh.heads * sh.headSize, I = sh.intermediate;
  layers_.emplace_back();
  LayerSlots& L = layers_.back();
  L.shape = sh;
  L.frozen = frozen;
  auto name = [&](const char* n) { return prefix + at(n, l); };
  auto lin = [&](const char* wn, const char* bn, int K, int N) {
    Lin r;
    r.w = add_slot(name(wn), K, N, true);
    r.b = add_slot(name(bn), 1, N, false);
    r.K = K;
    r.N = N;
    return r;
  };
  L.qkv = lin("qkv_w", "qkv_b", H, 3 * Wd);
  L.o = lin("o_w", "o_b", Wd, H);
  L.ln1g = add_slot(name("ln1_g"), 1, H, false);
  L.ln1b = add_slot(name("ln1_b"), 1, H, false);
  L.in = lin("ffn_in_w", "ffn_in_b", H, I);
  L.out = lin("ffn_out_w", "ffn_out_b", I, H);
  L.ln2g = add_slot(name("ln2_g"), 1, H, false);
  L.ln2b = add_slot(name("ln2_b"), 1, H, false);
  for (const char* n : {"qkv_w", "qkv_b", "o_w", "o_b", "ln1_g", "ln1_b", "ffn_in_w", "ffn_in_b", "ffn_out_w", "ffn_out_b", "ln2_g", "ln2_b"})
    slots_[name(n)].layer = (int)layers_.size() - 1;
}

Trainer::Trainer(const EncoderConfig& cfg, const WeightLookup& w, const Kernels* k, const TrainOptions& opt,
                 const std::vector<LayerShape>& predecessors)
    : cfg_(cfg), opt_(opt), k_(k), tk_(train_kernels_matching(k)) {
  if (!k_ || !tk_) throw ConfigError("no kernel table for training");
  auto pos = [](const char* n, int v) {
    if (v <= 0) throw ConfigError(std::string("config.") + n + " must be a positive integer, got " + std::to_string(v));
  };
  pos("layers", cfg.layers);
  pos("heads", cfg.heads);
  pos("headSize", cfg.headSize);
  pos("hidden", cfg.hidden);
  pos("intermediate", cfg.intermediate);
  pos("vocab", cfg.vocab);
  pos("maxPositions", cfg.maxPositions);
  if (cfg.typeVocab < 0) throw ConfigError("config.typeVocab must be >= 0");
  cls_ = cfg.classifierLabels > 0;
  if (!cfg.mlm && !cls_) throw ConfigError("training needs the MLM head (config.mlm) or a classifier (config.classifier)");
  if (cls_ && !cfg.pooler) throw ConfigError("training a classifier needs the pooler it reads (config.pooler)");
  if ((int)cfg.lnEps.size() != 2 * cfg.layers) throw ConfigError("config.lnEps must have 2 entries per layer");
  if (cfg.threads < 1 || cfg.threads > kMaxThreads)
    throw ConfigError("config.threads must be an integer in [1, " + std::to_string(kMaxThreads) + "]");
  if (!(opt.lr >= 0) || !(opt.beta1 >= 0 && opt.beta1 < 1) || !(opt.beta2 >= 0 && opt.beta2 < 1) || !(opt.eps > 0) ||
      !(opt.weightDecay >= 0) || !std::isfinite(opt.headLr) || opt.totalSteps < 1 || opt.warmupSteps < 0 || opt.warmupSteps > opt.totalSteps ||
      opt.sharedFrozenUntil < 0)
    throw ConfigError("training options out of range (lr >= 0, 0 <= beta < 1, eps > 0, weightDecay >= 0, 0 <= warmupSteps <= totalSteps, totalSteps >= 1, sharedFrozenUntil >= 0)");
  for (size_t j = 0; j < predecessors.size(); ++j) {
    const LayerShape& sh = predecessors[j];
    if (sh.heads <= 0 || sh.headSize <= 0 || sh.intermediate <= 0 || !(sh.scoreScale > 0) || !std::isfinite(sh.scoreScale) ||
        !(sh.lnEps1 > 0) || !(sh.lnEps2 > 0))
      throw ConfigError("predecessor layer " + std::to_string(j) +
                        ": heads, headSize and intermediate must be positive integers, scoreScale and the LayerNorm epsilons positive");
  }
  if (cls_ && (!predecessors.empty() || opt.sharedFrozenUntil > 0))
    throw ConfigError("a classifier trains without predecessor layers or a frozen shared part (those are for masked-LM module replacing)");
  const int H = cfg.hidden, V = cfg.vocab;
  word_ = add_slot("word_emb", V, H, true);
  pos_ = add_slot("pos_emb", cfg.maxPositions, H, true);
  type_ = cfg.typeVocab > 0 ? add_slot("type_emb", cfg.typeVocab, H, true) : 0;
  embg_ = add_slot("emb_ln_g", 1, H, false);
  embb_ = add_slot("emb_ln_b", 1, H, false);
  for (int l = 0; l < cfg.layers; ++l) {
    LayerShape sh;
    sh.heads = cfg.heads;
    sh.headSize = cfg.headSize;
    sh.intermediate = cfg.intermediate;
    sh.scoreScale = cfg.scoreScale;
    sh.lnEps1 = cfg.lnEps[2 * l];
    sh.lnEps2 = cfg.lnEps[2 * l + 1];
    add_layer("", l, sh, false);
  }
  if (cls_) {
    // the classification head only (cls_head.h): no MLM head is read or trained
    poolw_ = add_slot("pooler_w", H, H, true);
    poolb_ = add_slot("pooler_b", 1, H, false);
    clsw_ = add_slot("cls_w", H, cfg.classifierLabels, true);
    clsb_ = add_slot("cls_b", 1, cfg.classifierLabels, false);
    for (const char* n : {"pooler_w", "pooler_b", "cls_w", "cls_b"}) slots_[n].head = true;
  } else {
    mlm_dense_.w = add_slot("mlm_w", H, H, true);
    mlm_dense_.b = add_slot("mlm_b", 1, H, false);
    mlm_dense_.K = H;
    mlm_dense_.N = H;
    mlmg_ = add_slot("mlm_ln_g", 1, H, false);
    mlmb_ = add_slot("mlm_ln_b", 1, H, false);
    if (!opt.tiedDecoder) decoder_.w = add_slot("decoder_w", H, V, true);
    decoder_.b = add_slot("decoder_b", 1, V, false);
    decoder_.K = H;
    decoder_.N = V;
  }
  if (opt.hiddenTarget < 0 || opt.hiddenTarget > (1 << 20)) throw ConfigError("hiddenTarget must be in [0, 2^20]");
  if (opt.hiddenTarget > 0 && opt.hiddenTarget != H) {
    if (cls_) throw ConfigError("the hidden-state projection (hiddenTarget) is for masked-LM distillation, not a classifier");
    proj_ = add_slot("hidden_proj", H, opt.hiddenTarget, true);
    proj_on_ = true;
  }
  for (auto& kv : slots_) kv.second.shared = kv.first.find('.') == std::string::npos;  // no layer index
  if (proj_on_) slots_["hidden_proj"].shared = false;  // a distillation aid, trained from the first update
  // the predecessors after every trainable parameter: the optimizer state is the first nparams_ floats
  nparams_ = nalloc_;
  const size_t ntrain_names = order_.size();
  for (size_t j = 0; j < predecessors.size(); ++j) add_layer("pred.", (int)j, predecessors[j], true);
  pred_order_.assign(order_.begin() + ntrain_names, order_.end());
  order_.resize(ntrain_names);
  for (const std::string& n : pred_order_) slots_[n].frozen = true;

  p_ = alloc_floats(nalloc_);
  g_ = alloc_floats(nparams_);
  m_ = alloc_floats(nparams_);
  v_ = alloc_floats(nparams_);
  std::memset(p_.get(), 0, nalloc_ * sizeof(float));
  std::memset(g_.get(), 0, nparams_ * sizeof(float));
  std::memset(m_.get(), 0, nparams_ * sizeof(float));
  std::memset(v_.get(), 0, nparams_ * sizeof(float));
  std::vector<std::string> all = weight_names();
  for (const std::string& n : predecessor_names()) all.push_back(n);
  for (const std::string& n : all) {
    size_t got = 0;
    const float* src = w(n, &got);
    const size_t want = weight_size(n);
    if (!src) throw ConfigError("weight '" + n + "' is missing (expected a Float32Array of " + std::to_string(want) + ")");
    if (got != want)
      throw ConfigError("weight '" + n + "' has " + std::to_string(got) + " values, expected " + std::to_string(want));
    write_weight(n, src);
  }
  pool_.reset(new ThreadPool(cfg.threads));
}

Trainer::~Trainer() = default;

// ---------------------------------------------------------------- names

std::vector<std::string> Trainer::expand_names(const std::vector<std::string>& order) const {
  std::vector<std::string> out;
  for (const std::string& n : order) {
    const size_t pre = n.rfind("pred.", 0) == 0 ? 5 : 0;
    if (n.compare(pre, 4, "qkv_") == 0) {
      const std::string kind = n.substr(pre + 4);  // "w.l" or "b.l"
      for (const char* p : {"q_", "k_", "v_"}) out.push_back(n.substr(0, pre) + p + kind);
    } else {
      out.push_back(n);
    }
  }
  return out;
}

std::vector<std::string> Trainer::weight_names() const { return expand_names(order_); }
std::vector<std::string> Trainer::predecessor_names() const { return expand_names(pred_order_); }

// The slot holding `name`, and the column range of it that is `name` (q/k/v live in one fused qkv).
const Trainer::Slot* Trainer::find(const std::string& name, int* col0, int* ncols) const {
  const size_t pre = name.rfind("pred.", 0) == 0 ? 5 : 0;
  const std::string base = name.substr(pre);
  auto it = slots_.find(name);
  if (it != slots_.end() && base.rfind("qkv_", 0) != 0) {
    *col0 = 0;
    *ncols = it->second.cols;
    return &it->second;
  }
  if (base.size() > 2 && (base[0] == 'q' || base[0] == 'k' || base[0] == 'v') && base[1] == '_') {
    auto f = slots_.find(name.substr(0, pre) + "qkv_" + base.substr(2));
    if (f == slots_.end()) return nullptr;
    const int Wd = f->second.cols / 3;
    *col0 = (base[0] == 'q' ? 0 : base[0] == 'k' ? 1 : 2) * Wd;
    *ncols = Wd;
    return &f->second;
  }
  return nullptr;
}

size_t Trainer::weight_size(const std::string& name) const {
  int c0, nc;
  const Slot* s = find(name, &c0, &nc);
  return s ? (size_t)s->rows * nc : 0;
}

void Trainer::copy_cols(const std::string& name, const float* base, float* out) const {
  int c0, nc;
  const Slot* s = find(name, &c0, &nc);
  if (!s) throw ConfigError("no trained weight named '" + name + "'");
  for (int r = 0; r < s->rows; ++r)
    std::memcpy(out + (size_t)r * nc, base + s->off + (size_t)r * s->cols + c0, sizeof(float) * nc);
}

void Trainer::read_weight(const std::string& name, float* out) const { copy_cols(name, p_.get(), out); }
void Trainer::read_grad(const std::string& name, float* out) const {
  int c0, nc;
  const Slot* s = find(name, &c0, &nc);
  if (s && s->frozen) throw ConfigError("'" + name + "' is a frozen predecessor weight: it has no gradient");
  copy_cols(name, g_.get(), out);
}

void Trainer::write_weight(const std::string& name, const float* in) {
  int c0, nc;
  const Slot* s = find(name, &c0, &nc);
  if (!s) throw ConfigError("no trained weight named '" + name + "'");
  for (int r = 0; r < s->rows; ++r)
    std::memcpy(p_.get() + s->off + (size_t)r * s->cols + c0, in + (size_t)r * nc, sizeof(float) * nc);
}

size_t Trainer::saved_floats_per_token(int seq) const {
  (void)seq;  // attention probabilities are recomputed in the backward, so nothing grows with seq
  const size_t H = cfg_.hidden, Wd = (size_t)cfg_.heads * cfg_.headSize, I = cfg_.intermediate;
  // embedding LN (xhat, rstd) + per layer qkv, ctx, xhat1, rstd1, u (GELU input), xhat2, rstd2
  return H + 1 + (size_t)cfg_.layers * (3 * Wd + Wd + H + 1 + I + H + 1);
}

size_t Trainer::saved_floats_per_position() const {
  // gathered final hidden, MLM dense output, its LN (xhat, rstd), the normalised row; logits row
  return 4 * (size_t)cfg_.hidden + 1 + cfg_.vocab;
}

// warm-up to `peak` over the first warmupSteps updates, then linear decay to 0 at totalSteps
static float scheduled(double peak, int64_t t, int warmup, int total) {
  const double w = warmup, T = total;
  if (t <= 0) return 0.0f;
  if (warmup > 0 && t <= warmup) return (float)(peak * (double)t / w);
  if (T <= w) return 0.0f;
  const double f = (T - (double)t) / (T - w);
  return (float)(peak * (f > 0 ? f : 0.0));
}

float Trainer::lr_at(int64_t t) const { return scheduled(opt_.lr, t, opt_.warmupSteps, opt_.totalSteps); }

float Trainer::head_lr_at(int64_t t) const {
  return opt_.headLr < 0 ? lr_at(t) : scheduled(opt_.headLr, t, opt_.warmupSteps, opt_.totalSteps);
}

void Trainer::validate(const TrainBatch& b) const {
  if (b.batch <= 0) throw InputTypeError("batch must be a positive integer, got " + std::to_string(b.batch));
  if (b.seq <= 0) throw InputTypeError("seq must be a positive integer, got " + std::to_string(b.seq));
  if (b.seq > cfg_.maxPositions)
    throw InputRangeError("seq " + std::to_string(b.seq) + " exceeds the model's " + std::to_string(cfg_.maxPositions) + " positions");
  if (!b.ids) throw InputTypeError("ids is required");
  const size_t M = (size_t)b.batch * b.seq;
  if (M > ((size_t)1 << 24))
    throw InputRangeError("batch x seq = " + std::to_string(M) + " tokens is more than a step takes (16,777,216)");
  for (size_t i = 0; i < M; ++i)
    if (b.ids[i] < 0 || b.ids[i] >= cfg_.vocab)
      throw InputRangeError("ids[" + std::to_string(i) + "] = " + std::to_string(b.ids[i]) + " is outside the vocabulary [0, " +
                            std::to_string(cfg_.vocab) + ")");
  if (b.types) {
    if (cfg_.typeVocab == 0) throw InputTypeError("types were given but the model has no token-type embeddings");
    for (size_t i = 0; i < M; ++i)
      if (b.types[i] < 0 || b.types[i] >= cfg_.typeVocab)
        throw InputRangeError("types[" + std::to_string(i) + "] = " + std::to_string(b.types[i]) + " is outside [0, " +
                              std::to_string(cfg_.typeVocab) + ")");
  }
  if (b.match || b.nmatch || b.teacherHidden || b.teacherAttention) {
    if (cls_) throw InputTypeError("the intermediate distillation terms (match, teacherHidden, teacherAttention) are for masked-LM training");
    if (!b.match || b.nmatch < 1) throw InputTypeError("teacherHidden and teacherAttention need match: the route positions they pair with");
    if (!b.teacherHidden && !b.teacherAttention) throw InputTypeError("match needs teacherHidden, teacherAttention or both");
    const int L = b.route ? b.nroute : cfg_.layers;
    std::vector<char> seen(L > 0 ? L : 1, 0);
    for (int i = 0; i < b.nmatch; ++i) {
      if (b.match[i] < 0 || b.match[i] >= L)
        throw InputRangeError("match[" + std::to_string(i) + "] = " + std::to_string(b.match[i]) + " is outside the route's layers [0, " +
                              std::to_string(L) + ")");
      if (seen[b.match[i]]++) throw InputRangeError("match[" + std::to_string(i) + "] = " + std::to_string(b.match[i]) + " pairs a layer a second time");
    }
    if (!(b.hiddenWeight >= 0) || !(b.attentionWeight >= 0) || !std::isfinite(b.hiddenWeight) || !std::isfinite(b.attentionWeight))
      throw InputRangeError("intermediate loss weights must be finite and >= 0");
    const size_t Ht = proj_on_ ? (size_t)opt_.hiddenTarget : (size_t)cfg_.hidden;
    if (b.teacherHidden)
      for (size_t i = 0, n = (size_t)b.nmatch * M * Ht; i < n; ++i)
        if (!std::isfinite(b.teacherHidden[i])) throw InputRangeError("teacherHidden[" + std::to_string(i) + "] is not a finite number");
    if (b.teacherAttention)
      for (size_t i = 0, n = (size_t)b.nmatch * M * b.seq; i < n; ++i)
        if (!(b.teacherAttention[i] >= 0.0f && b.teacherAttention[i] <= 1.0f))
          throw InputRangeError("teacherAttention[" + std::to_string(i) + "] is not a probability");
  }
  if (cls_) {
    const int L = cfg_.classifierLabels;
    if (!b.classes && !b.classTeacher) throw InputTypeError("a classification batch needs classes (CE term), teacher logits (KL term), or both");
    if (b.classes)
      for (int i = 0; i < b.batch; ++i)
        if (b.classes[i] < 0 || b.classes[i] >= L)
          throw InputRangeError("classes[" + std::to_string(i) + "] = " + std::to_string(b.classes[i]) + " is outside [0, " +
                                std::to_string(L) + ")");
    if (b.classTeacher)
      for (size_t i = 0; i < (size_t)b.batch * L; ++i)
        if (!std::isfinite(b.classTeacher[i])) throw InputRangeError("classTeacher[" + std::to_string(i) + "] is not a finite number");
    if (!(b.temperature > 0) || !std::isfinite(b.temperature)) throw InputRangeError("temperature must be a positive number");
    if (!(b.ceWeight >= 0) || !(b.klWeight >= 0) || !std::isfinite(b.ceWeight) || !std::isfinite(b.klWeight))
      throw InputRangeError("loss weights must be finite and >= 0");
    return;
  }
  if (b.npos <= 0 || !b.positions) throw InputTypeError("positions must name at least one token where the loss is taken");
  for (int p = 0; p < b.npos; ++p)
    if (b.positions[p] < 0 || (size_t)b.positions[p] >= M)
      throw InputRangeError("positions[" + std::to_string(p) + "] = " + std::to_string(b.positions[p]) + " is outside [0, " +
                            std::to_string(M) + ")");
  if (!b.labels && !b.teacher) throw InputTypeError("a batch needs labels (MLM term), teacher logits (KL term), or both");
  if (b.labels)
    for (int p = 0; p < b.npos; ++p)
      if (b.labels[p] < 0 || b.labels[p] >= cfg_.vocab)
        throw InputRangeError("labels[" + std::to_string(p) + "] = " + std::to_string(b.labels[p]) + " is outside the vocabulary");
  if (b.teacher) {
    const size_t n = (size_t)b.npos * cfg_.vocab;
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(b.teacher[i])) throw InputRangeError("teacher[" + std::to_string(i) + "] is not a finite number");
  }
  if (!(b.temperature > 0) || !std::isfinite(b.temperature)) throw InputRangeError("temperature must be a positive number");
  if (!(b.mlmWeight >= 0) || !(b.klWeight >= 0) || !std::isfinite(b.mlmWeight) || !std::isfinite(b.klWeight))
    throw InputRangeError("loss weights must be finite and >= 0");
  if (b.route) {
    if (b.nroute < 1) throw InputTypeError("route must name at least one layer of the stack");
    const int n = (int)layers_.size();
    std::vector<char> seen(n, 0);
    for (int i = 0; i < b.nroute; ++i) {
      const int r = b.route[i];
      if (r < 0 || r >= n)
        throw InputRangeError("route[" + std::to_string(i) + "] = " + std::to_string(r) + " is outside the layer stack [0, " +
                              std::to_string(n) + ")");
      if (seen[r]++) throw InputRangeError("route[" + std::to_string(i) + "] = " + std::to_string(r) + " runs a layer a second time");
    }
  }
}

// ---------------------------------------------------------------- parallel building blocks

template <class Fn>
void Trainer::rows_parallel(int M, Fn&& fn) {
  const int T = pool_->size();
  const int chunks = M < 4 * T ? M : 4 * T;
  const int per = (M + chunks - 1) / chunks;
  pool_->parallel_for(chunks, [&](int t, int tid) {
    const int r0 = t * per, r1 = imin(M, (t + 1) * per);
    for (int r = r0; r < r1; ++r) fn(r, tid);
  });
}

void Trainer::matmul(const float* A, size_t lda, const float* Bp, float* C, size_t ldc, int M, int N, int K, Epi epi,
                     const float* bias, const float* R, size_t ldr) {
  const int T = pool_->size(), MR = k_->MR, NR = k_->NR;
  const int npan = (N + NR - 1) / NR;
  const int mblocks = (M + k_->MC - 1) / k_->MC;
  const int msz = round_up((M + mblocks - 1) / mblocks, MR);
  const int mb = (M + msz - 1) / msz;
  int nchunks = T == 1 ? 1 : (4 * T + mb - 1) / mb;
  if (nchunks > npan) nchunks = npan;
  if (nchunks < 1) nchunks = 1;
  const int pchunk = (npan + nchunks - 1) / nchunks;
  nchunks = (npan + pchunk - 1) / pchunk;
  GemmArgs g;
  g.A = A;
  g.lda = lda;
  g.B = Bp;
  g.C = C;
  g.ldc = ldc;
  g.M = M;
  g.N = N;
  g.K = K;
  g.epi = epi;
  g.bias = bias;
  g.R = R;
  g.ldr = ldr;
  const Kernels* k = k_;
  pool_->parallel_for(mb * nchunks, [&](int t, int tid) {
    const int mi = t / nchunks, ni = t % nchunks;
    const int m0 = mi * msz, m1 = imin(M, m0 + msz);
    const int n0 = ni * pchunk * NR, n1 = imin(N, (ni + 1) * pchunk * NR);
    k->gemm_tile(g, m0, m1, n0, n1, ws_[tid].p.get());
  });
}

const float* Trainer::pack(const float* W, int K, int N) {
  const int NR = k_->NR;
  float* dst = packw_.get(packed_size(K, N, NR));
  const PackSeg seg{W, N, (size_t)N};
  const int panels = (N + NR - 1) / NR;
  const int parts = imin(panels, 4 * pool_->size());
  const int per = (panels + parts - 1) / parts;
  const int KC = k_->KC;
  pool_->parallel_for(parts, [&](int t, int) { pack_b_panels(dst, K, &seg, 1, NR, KC, t * per, (t + 1) * per); });
  return dst;
}

const float* Trainer::pack_t(const float* W, int K, int N) {
  // B[n][k] = W[k][n]: B is [N rows, K cols], pack_bt(dst, rows N, cols K, src W, ld N)
  const int NR = k_->NR, KC = k_->KC;
  float* dst = packw_.get(packed_size(N, K, NR));
  const int panels = (K + NR - 1) / NR;
  if (N <= KC && panels > 1) {
    // one K block: panels are contiguous [N][NR] runs, so split them across threads
    const int parts = imin(panels, 4 * pool_->size());
    const int per = (panels + parts - 1) / parts;
    pool_->parallel_for(parts, [&](int t, int) {
      const int p0 = t * per, p1 = imin(panels, (t + 1) * per);
      if (p0 >= p1) return;
      const int c0 = p0 * NR, nc = imin(K, p1 * NR) - c0;
      pack_bt(dst + (size_t)p0 * N * NR, N, nc, W + c0 * (size_t)N, N, NR, KC);
    });
  } else {
    pack_bt(dst, N, K, W, N, NR, KC);
  }
  return dst;
}

void Trainer::linear_fwd(const float* X, size_t ldx, int M, const Lin& L, float* Y, Epi epi, const float* R) {
  const float* Bp = pack(p_.get() + L.w, L.K, L.N);
  // bias padded to a whole panel: the kernels read (never store) past N
  const int npad = round_up(L.N, k_->NR);
  float* bias = zeros_.get((size_t)npad * 2) + npad;
  std::memcpy(bias, p_.get() + L.b, sizeof(float) * L.N);
  for (int j = L.N; j < npad; ++j) bias[j] = 0.0f;
  matmul(X, ldx, Bp, Y, L.N, M, L.N, L.K, epi, bias, R, R ? L.N : 0);
}

void Trainer::weight_grad(const float* X, int M, int K, const float* dY, int N, float* dW) {
  // dW[K,N] = X^T dY: A = X^T [K,M] (transposed here), B = dY [M,N] packed
  float* xt = tr_.get((size_t)K * M);
  // blocked transpose: 32 x 32 tiles, so both sides stay in L1
  const int tb = 32, tiles_k = (K + tb - 1) / tb;
  pool_->parallel_for(tiles_k, [&](int t, int) {
    const int c0 = t * tb, c1 = imin(K, c0 + tb);
    for (int r0 = 0; r0 < M; r0 += tb) {
      const int r1 = imin(M, r0 + tb);
      for (int c = c0; c < c1; ++c)
        for (int r = r0; r < r1; ++r) xt[(size_t)c * M + r] = X[(size_t)r * K + c];
    }
  });
  const int NR = k_->NR, KC = k_->KC;
  float* bp = packd_.get(packed_size(M, N, NR));
  const PackSeg seg{dY, N, (size_t)N};
  const int panels = (N + NR - 1) / NR;
  const int parts = imin(panels, 4 * pool_->size());
  const int per = (panels + parts - 1) / parts;
  pool_->parallel_for(parts, [&](int t, int) { pack_b_panels(bp, M, &seg, 1, NR, KC, t * per, (t + 1) * per); });
  // gradients were zeroed at the start of the step and each weight is reached once: overwrite
  matmul(xt, M, bp, dW, N, K, N, M, Epi::None, nullptr, nullptr, 0);
}

void Trainer::colsum_add(const float* Y, int M, int N, float* out, const float* mulby) {
  // fixed blocks of rows (not one per thread, so the sums do not depend on the thread count), each
  // summed in float lanes, then the blocks added in order in double
  const int rows = 256;
  const int nb = (M + rows - 1) / rows;
  float* part = colsum_.get((size_t)nb * N);
  const TrainKernels* tk = tk_;
  pool_->parallel_for(nb, [&](int b, int) {
    float* acc = part + (size_t)b * N;
    std::memset(acc, 0, sizeof(float) * N);
    for (int r = b * rows; r < M && r < (b + 1) * rows; ++r)
      tk->acc_mul(acc, Y + (size_t)r * N, mulby ? mulby + (size_t)r * N : nullptr, N);
  });
  const int chunk = 256, nc = (N + chunk - 1) / chunk;
  pool_->parallel_for(nc, [&](int t, int) {
    for (int c = t * chunk; c < N && c < (t + 1) * chunk; ++c) {
      double s = 0;
      for (int b = 0; b < nb; ++b) s += part[(size_t)b * N + c];
      out[c] += (float)s;
    }
  });
}

void Trainer::linear_bwd(const float* X, int M, const Lin& L, const float* dY, float* dX, const float* R, bool grads) {
  if (dX) {
    const float* Bt = pack_t(p_.get() + L.w, L.K, L.N);
    const int kpad = round_up(L.K, k_->NR);
    float* z = zeros_.get((size_t)kpad * 2);
    std::memset(z, 0, sizeof(float) * kpad);
    matmul(dY, L.N, Bt, dX, L.K, M, L.K, L.N, R ? Epi::BiasResid : Epi::None, z, R, R ? L.K : 0);
  }
  if (!grads) return;
  weight_grad(X, M, L.K, dY, L.N, g_.get() + L.w);
  colsum_add(dY, M, L.N, g_.get() + L.b);
}

void Trainer::ln_rows_fwd(float* y, float* xhat, float* rstd, const float* x, int M, size_t g, size_t b, float eps) {
  const int H = cfg_.hidden;
  const float* gg = p_.get() + g;
  const float* bb = p_.get() + b;
  const TrainKernels* tk = tk_;
  rows_parallel(M, [&](int r, int) {
    rstd[r] = tk->layernorm_fwd(y + (size_t)r * H, xhat + (size_t)r * H, x + (size_t)r * H, gg, bb, H, eps);
  });
}

void Trainer::ln_rows_bwd(float* dx, const float* dy, const float* xhat, const float* rstd, int M, size_t g, size_t b,
                          bool grads) {
  const int H = cfg_.hidden;
  if (grads) {
    colsum_add(dy, M, H, g_.get() + g, xhat);
    colsum_add(dy, M, H, g_.get() + b);
  }
  const float* gg = p_.get() + g;
  const TrainKernels* tk = tk_;
  rows_parallel(M, [&](int r, int) {
    tk->layernorm_bwd(dx + (size_t)r * H, dy + (size_t)r * H, xhat + (size_t)r * H, gg, rstd[r], H);
  });
}

void Trainer::affine_rows(float* y, const float* xhat, int M, size_t g, size_t b) {
  const int H = cfg_.hidden;
  const float* gg = p_.get() + g;
  const float* bb = p_.get() + b;
  rows_parallel(M, [&](int r, int) {
    const float* x = xhat + (size_t)r * H;
    float* o = y + (size_t)r * H;
    for (int j = 0; j < H; ++j) o[j] = x[j] * gg[j] + bb[j];
  });
}

// ---------------------------------------------------------------- forward + backward

double Trainer::forward_backward(const TrainBatch& bt, double* mlm_out, double* kl_out, double* hid_out, double* att_out) {
  const int B = bt.batch, S = bt.seq, M = B * S;
  const int H = cfg_.hidden, Vv = cfg_.vocab;
  // the route: the stack layers this batch runs, in order (default: the trainable layers)
  route_.clear();
  if (bt.route) route_.assign(bt.route, bt.route + bt.nroute);
  else
    for (int l = 0; l < cfg_.layers; ++l) route_.push_back(l);
  const int L = (int)route_.size();
  int maxD = 1, maxW = 1, maxI = 1;
  for (int l : route_) {
    const LayerShape& sh = layers_[l].shape;
    maxD = sh.headSize > maxD ? sh.headSize : maxD;
    maxW = sh.heads * sh.headSize > maxW ? sh.heads * sh.headSize : maxW;
    maxI = sh.intermediate > maxI ? sh.intermediate : maxI;
  }
  // Embeddings and head frozen: gradients of the layers only, and the backward stops at the lowest
  // trainable layer of the route (nothing below it needs dX).
  const bool shared = shared_trainable(step_ + 1);
  int lowest = 0;
  if (!shared) {
    lowest = L;
    for (int i = 0; i < L; ++i)
      if (!layers_[route_[i]].frozen) {
        lowest = i;
        break;
      }
  }
  const int T = pool_->size();
  const Kernels* k = k_;
  const TrainKernels* tk = tk_;
  float* p = p_.get();
  float* gr = g_.get();

  // scratch
  ws_.resize(T);
  aws_.resize(T);
  lossws_.resize(T);
  for (int t = 0; t < T; ++t) {
    ws_[t].get((size_t)k->MC * k->KC);
    aws_[t].get(attention_ws_floats(S, maxD, k));
    lossws_[t].get((size_t)3 * Vv + 64);
  }
  saved_.resize(L);
  float* madd = madd_.get(M);
  float* x = x_.get((size_t)M * H);
  float* t1 = t_.get((size_t)M * H);
  float* xhat_e = xhat_e_.get((size_t)M * H);
  float* r_e = r_e_.get(M);
  for (int i = 0; i < M; ++i) madd[i] = (1.0f - (bt.mask ? (float)bt.mask[i] : 1.0f)) * cfg_.maskValue;
  // intermediate terms: the match entry of each route position (-1 none), the real tokens they average over
  std::vector<int> mi(L, -1);
  for (int i = 0; i < bt.nmatch; ++i) mi[bt.match[i]] = i;
  int real = 0;
  for (int i = 0; i < M; ++i) real += bt.mask ? (bt.mask[i] != 0) : 1;
  double att_sum = 0, hid_sum = 0;
  if (bt.teacherAttention && (int)attd_.size() < bt.nmatch) attd_.resize(bt.nmatch);

  // embeddings
  {
    const float* word = p + word_;
    const float* posn = p + pos_;
    const float* type = cfg_.typeVocab > 0 ? p + type_ : nullptr;
    rows_parallel(M, [&](int r, int) {
      const float* tv = type ? type + (size_t)(bt.types ? bt.types[r] : 0) * H : nullptr;
      k->add3(t1 + (size_t)r * H, word + (size_t)bt.ids[r] * H, posn + (size_t)(r % S) * H, tv, H);
    });
    ln_rows_fwd(x, xhat_e, r_e, t1, M, embg_, embb_, cfg_.embLnEps);
  }
  float* gi = gi_.get((size_t)M * maxI);
  for (int l = 0; l < L; ++l) {
    const LayerSlots& ly = layers_[route_[l]];
    const int heads = ly.shape.heads, d = ly.shape.headSize, Wd = heads * d, I = ly.shape.intermediate;
    Saved& sv = saved_[l];
    float* qkv = sv.qkv.get((size_t)M * 3 * Wd);
    float* ctx = sv.ctx.get((size_t)M * Wd);
    float* xhat1 = sv.xhat1.get((size_t)M * H);
    float* r1 = sv.r1.get(M);
    float* u = sv.u.get((size_t)M * I);
    float* xhat2 = sv.xhat2.get((size_t)M * H);
    float* r2 = sv.r2.get(M);
    linear_fwd(x, H, M, ly.qkv, qkv, Epi::Bias);
    const float scale = ly.shape.scoreScale;
    const int ai = bt.teacherAttention ? mi[l] : -1;
    if (ai < 0) {
      pool_->parallel_for(B * heads, [&](int task, int tid) {
        const int b = task / heads, h = task % heads;
        const float* q = qkv + (size_t)b * S * 3 * Wd + (size_t)h * d;
        attention_forward(k, q, q + Wd, q + 2 * Wd, 3 * (size_t)Wd, ctx + (size_t)b * S * Wd + (size_t)h * d, Wd, madd + (size_t)b * S,
                          scale, S, d, aws_[tid].p.get(), nullptr);
      });
    } else {
      // a matched layer: each sequence's heads on one thread, their probabilities averaged into pbar_
      float* pbar = pbar_.get((size_t)B * S * S);
      probs_.resize(T);
      const float inv = 1.0f / (float)heads;
      pool_->parallel_for(B, [&](int b, int tid) {
        float* pr = probs_[tid].get((size_t)S * S);
        float* pb = pbar + (size_t)b * S * S;
        std::memset(pb, 0, sizeof(float) * (size_t)S * S);
        for (int h = 0; h < heads; ++h) {
          const float* q = qkv + (size_t)b * S * 3 * Wd + (size_t)h * d;
          attention_forward(k, q, q + Wd, q + 2 * Wd, 3 * (size_t)Wd, ctx + (size_t)b * S * Wd + (size_t)h * d, Wd, madd + (size_t)b * S,
                            scale, S, d, aws_[tid].p.get(), pr);
          for (int r = 0; r < S; ++r) tk->axpy(pb + (size_t)r * S, inv, pr + (size_t)r * S, S);
        }
      });
      att_sum += attention_probs_loss(bt, ai, l, real);
    }
    linear_fwd(ctx, Wd, M, ly.o, t1, Epi::BiasResid, x);
    ln_rows_fwd(x, xhat1, r1, t1, M, ly.ln1g, ly.ln1b, ly.shape.lnEps1);
    linear_fwd(x, H, M, ly.in, u, Epi::Bias);
    rows_parallel(M, [&](int r, int) { tk->gelu_fwd(gi + (size_t)r * I, u + (size_t)r * I, I); });
    linear_fwd(gi, I, M, ly.out, t1, Epi::BiasResid, x);
    ln_rows_fwd(x, xhat2, r2, t1, M, ly.ln2g, ly.ln2b, ly.shape.lnEps2);
  }

  float* dx = dx_.get((size_t)M * H);
  double loss = cls_ ? cls_head(bt, x, dx, mlm_out, kl_out) : mlm_head(bt, x, dx, shared, mlm_out, kl_out);
  if (bt.teacherAttention) {
    *att_out = att_sum / bt.nmatch;
    loss += bt.attentionWeight * *att_out;
  }
  if (lowest == L) return loss;  // nothing on this route trains

  float* dt = dt_.get((size_t)M * H);
  float* di = di_.get((size_t)M * maxI);
  float* dqkv = dqkv_.get((size_t)M * 3 * maxW);
  float* dctx = dctx_.get((size_t)M * maxW);
  for (int l = L - 1; l >= lowest; --l) {
    const LayerSlots& ly = layers_[route_[l]];
    const int heads = ly.shape.heads, d = ly.shape.headSize, Wd = heads * d, I = ly.shape.intermediate;
    const bool wg = !ly.frozen;  // weight gradients: not for a frozen predecessor, whose dX still flows
    Saved& sv = saved_[l];
    const float* qkv = sv.qkv.p.get();
    if (bt.teacherHidden && mi[l] >= 0) hid_sum += hidden_state_loss(bt, mi[l], l, real, dx);
    // LN2: dx -> dt (grad of ffn_out + residual)
    ln_rows_bwd(dt, dx, sv.xhat2.p.get(), sv.r2.p.get(), M, ly.ln2g, ly.ln2b, wg);
    // FFN out: input gelu(u), recomputed (only its weight gradient reads it)
    if (wg) rows_parallel(M, [&](int r, int) { tk->gelu_fwd(gi + (size_t)r * I, sv.u.p.get() + (size_t)r * I, I); });
    linear_bwd(gi, M, ly.out, dt, di, nullptr, wg);
    rows_parallel(M, [&](int r, int) { tk->gelu_bwd(di + (size_t)r * I, sv.u.p.get() + (size_t)r * I, I); });
    // FFN in: input x1 = LN1 output, recomputed; dx1 = du W_in^T + dt (residual)
    if (wg) affine_rows(x, sv.xhat1.p.get(), M, ly.ln1g, ly.ln1b);
    linear_bwd(x, M, ly.in, di, dx, dt, wg);
    // LN1: dx1 -> dt (grad of attention output + residual)
    ln_rows_bwd(dt, dx, sv.xhat1.p.get(), sv.r1.p.get(), M, ly.ln1g, ly.ln1b, wg);
    linear_bwd(sv.ctx.p.get(), M, ly.o, dt, dctx, nullptr, wg);
    const float scale = ly.shape.scoreScale;
    pool_->parallel_for(B * heads, [&](int task, int tid) {
      const int b = task / heads, h = task % heads;
      const size_t ld = 3 * (size_t)Wd;
      const float* q = qkv + (size_t)b * S * ld + (size_t)h * d;
      float* dq = dqkv + (size_t)b * S * ld + (size_t)h * d;
      const float* dprobs = bt.teacherAttention && mi[l] >= 0 ? attd_[mi[l]].p.get() + (size_t)b * S * S : nullptr;
      attention_backward(k, tk, q, q + Wd, q + 2 * Wd, ld, dctx + (size_t)b * S * Wd + (size_t)h * d, Wd, dq, dq + Wd, dq + 2 * Wd, ld,
                         madd + (size_t)b * S, scale, S, d, aws_[tid].p.get(), dprobs);
    });
    // layer input, recomputed from the previous LayerNorm; dX of the lowest layer only when the embeddings train
    if (wg) {
      if (l == 0) affine_rows(x, xhat_e, M, embg_, embb_);
      else affine_rows(x, saved_[l - 1].xhat2.p.get(), M, layers_[route_[l - 1]].ln2g, layers_[route_[l - 1]].ln2b);
    }
    linear_bwd(x, M, ly.qkv, dqkv, l > lowest || shared ? dx : nullptr, dt, wg);
  }
  if (bt.teacherHidden) {
    *hid_out = hid_sum / bt.nmatch;
    loss += bt.hiddenWeight * *hid_out;
  }
  if (!shared) return loss;
  // embedding LN, then the sparse row sums into the tables (split by columns: no two threads share a row part)
  ln_rows_bwd(dt, dx, xhat_e, r_e, M, embg_, embb_);
  {
    const int chunk = 64, nchunks = (H + chunk - 1) / chunk;
    float* gw = gr + word_;
    float* gp = gr + pos_;
    float* gt = cfg_.typeVocab > 0 ? gr + type_ : nullptr;
    pool_->parallel_for(nchunks, [&](int t, int) {
      const int c0 = t * chunk, c1 = imin(H, c0 + chunk);
      for (int r = 0; r < M; ++r) {
        const float* s = dt + (size_t)r * H;
        float* w = gw + (size_t)bt.ids[r] * H;
        float* ps = gp + (size_t)(r % S) * H;
        float* ty = gt ? gt + (size_t)(bt.types ? bt.types[r] : 0) * H : nullptr;
        for (int c = c0; c < c1; ++c) {
          w[c] += s[c];
          ps[c] += s[c];
          if (ty) ty[c] += s[c];
        }
      }
    });
  }
  return loss;
}

// KL(teacher row || student row) of the head-averaged probabilities (pbar_, from the forward) of route
// position l against match entry i, over the real query rows; dL/dP of each head into attd_[i]:
// -w t / (s + eps) / heads, w = attentionWeight / (nmatch * real). Keys where the teacher's probability
// is 0 (masked) add nothing. Sums per sequence, then in order: the same for any thread count.
double Trainer::attention_probs_loss(const TrainBatch& bt, int i, int l, int real) {
  const int B = bt.batch, S = bt.seq;
  const size_t SS = (size_t)S * S;
  const float* pbar = pbar_.p.get();
  const float* tch = bt.teacherAttention + (size_t)i * B * SS;
  float* dP = attd_[i].get((size_t)B * SS);
  const int heads = layers_[route_[l]].shape.heads;
  const double w = (double)bt.attentionWeight / ((double)bt.nmatch * (real > 0 ? real : 1));
  const float eps = 1e-12f;
  std::vector<double> part(B, 0.0);
  pool_->parallel_for(B, [&](int b, int) {
    double acc = 0;
    for (int r = 0; r < S; ++r) {
      const size_t o = (size_t)b * SS + (size_t)r * S;
      float* d = dP + o;
      if (bt.mask && bt.mask[(size_t)b * S + r] == 0) {
        std::memset(d, 0, sizeof(float) * S);
        continue;
      }
      const float* t = tch + o;
      const float* s = pbar + o;
      for (int j = 0; j < S; ++j) {
        if (t[j] > 0.0f) {
          const double sj = (double)s[j] + eps;
          acc += (double)t[j] * (std::log((double)t[j]) - std::log(sj));
          d[j] = (float)(-w * t[j] / sj / heads);
        } else {
          d[j] = 0.0f;
        }
      }
    }
    part[b] = acc;
  });
  double sum = 0;
  for (double v : part) sum += v;
  return sum / (real > 0 ? real : 1);
}

// MSE of route position l's output (through hidden_proj when there is one) against match entry i, over
// the real tokens' values; adds dL/dh into dx and accumulates the projection's gradient. Runs in the
// backward (the gradients are zeroed by then), recomputing the output from its LayerNorm.
double Trainer::hidden_state_loss(const TrainBatch& bt, int i, int l, int real, float* dx) {
  const int M = bt.batch * bt.seq, H = cfg_.hidden, Ht = proj_on_ ? opt_.hiddenTarget : H;
  const LayerSlots& ly = layers_[route_[l]];
  float* h = hbuf_.get((size_t)M * H);
  affine_rows(h, saved_[l].xhat2.p.get(), M, ly.ln2g, ly.ln2b);
  float* y = h;
  if (proj_on_) {
    y = ybuf_.get((size_t)M * Ht);
    matmul(h, H, pack(p_.get() + proj_, H, Ht), y, Ht, M, Ht, H, Epi::None, nullptr, nullptr, 0);
  }
  // y becomes dL/dy in place, row by row
  const float* t = bt.teacherHidden + (size_t)i * M * Ht;
  const float w = (float)(2.0 * bt.hiddenWeight / ((double)bt.nmatch * (real > 0 ? real : 1) * Ht));
  double* rl = reinterpret_cast<double*>(hrow_.get((size_t)M * 2));
  rows_parallel(M, [&](int r, int) {
    float* yr = y + (size_t)r * Ht;
    if (bt.mask && bt.mask[r] == 0) {
      std::memset(yr, 0, sizeof(float) * Ht);
      rl[r] = 0;
      return;
    }
    const float* tr = t + (size_t)r * Ht;
    double acc = 0;
    for (int j = 0; j < Ht; ++j) {
      const float e = yr[j] - tr[j];
      acc += (double)e * e;
      yr[j] = w * e;
    }
    rl[r] = acc;
  });
  double sum = 0;
  for (int r = 0; r < M; ++r) sum += rl[r];
  if (proj_on_) {
    // dproj += h^T dY (weight_grad overwrites: via projg_); dh = dY proj^T into h (no longer needed)
    float* pg = projg_.get((size_t)H * Ht);
    weight_grad(h, M, H, y, Ht, pg);
    tk_->axpy(g_.get() + proj_, 1.0f, pg, H * Ht);
    matmul(y, Ht, pack_t(p_.get() + proj_, H, Ht), h, H, M, H, Ht, Epi::None, nullptr, nullptr, 0);
    y = h;
  }
  const TrainKernels* tk = tk_;
  rows_parallel(M, [&](int r, int) { tk->axpy(dx + (size_t)r * H, 1.0f, y + (size_t)r * H, H); });
  return sum / ((double)(real > 0 ? real : 1) * Ht);
}

// MLM head on the loss positions only
double Trainer::mlm_head(const TrainBatch& bt, float* x, float* dx, bool shared, double* mlm_out, double* kl_out) {
  const int M = bt.batch * bt.seq, P = bt.npos, H = cfg_.hidden, Vv = cfg_.vocab;
  const Kernels* k = k_;
  const TrainKernels* tk = tk_;
  float* p = p_.get();
  float* gr = g_.get();
  float* hsel = hsel_.get((size_t)P * H);
  float* hu = hu_.get((size_t)P * H);
  float* xhatm = xhatm_.get((size_t)P * H);
  float* rm = rm_.get(P);
  float* nrm = nrm_.get((size_t)P * H);
  float* logits = logits_.get((size_t)P * Vv);
  for (int i = 0; i < P; ++i) std::memcpy(hsel + (size_t)i * H, x + (size_t)bt.positions[i] * H, sizeof(float) * H);
  linear_fwd(hsel, H, P, mlm_dense_, hu, Epi::Bias);
  float* hg = dh_.get((size_t)P * H);
  rows_parallel(P, [&](int r, int) { tk->gelu_fwd(hg + (size_t)r * H, hu + (size_t)r * H, H); });
  ln_rows_fwd(nrm, xhatm, rm, hg, P, mlmg_, mlmb_, cfg_.mlmLnEps);
  {
    const float* Bp = opt_.tiedDecoder ? pack_t(p + word_, Vv, H) : pack(p + decoder_.w, H, Vv);
    const int npad = round_up(Vv, k->NR);
    float* bias = zeros_.get((size_t)npad * 2) + npad;
    std::memcpy(bias, p + decoder_.b, sizeof(float) * Vv);
    for (int j = Vv; j < npad; ++j) bias[j] = 0.0f;
    matmul(nrm, H, Bp, logits, Vv, P, Vv, H, Epi::Bias, bias, nullptr, 0);
  }

  // loss and dlogits, row by row (logits replaced by their gradient)
  double* rl = reinterpret_cast<double*>(rowloss_.get((size_t)P * 4));
  const float invT = 1.0f / bt.temperature;
  const double a_mlm = bt.labels ? bt.mlmWeight : 0.0, a_kl = bt.teacher ? bt.klWeight : 0.0;
  const double Td = bt.temperature;
  rows_parallel(P, [&](int r, int tid) {
    float* z = logits + (size_t)r * Vv;
    float* e1 = lossws_[tid].p.get();
    float* e2 = e1 + Vv;
    double mlm = 0, kl = 0;
    const float zmax = tk->row_max(z, Vv);
    // student at T = 1: p = exp(z - max) / s1
    for (int j = 0; j < Vv; ++j) e1[j] = z[j] - zmax;
    k->exp(e1, Vv);
    const double s1 = tk->row_sum(e1, Vv);
    if (bt.labels) mlm = std::log(s1) - ((double)z[bt.labels[r]] - zmax);
    if (bt.teacher) {
      // student and teacher at T: qs = exp((z - zmax)/T) / s2, qt = exp((t - tmax)/T) / s3
      const float* tz = bt.teacher + (size_t)r * Vv;
      const float tmax = tk->row_max(tz, Vv);
      for (int j = 0; j < Vv; ++j) e2[j] = (tz[j] - tmax) * invT;
      k->exp(e2, Vv);
      const double s3 = tk->row_sum(e2, Vv);
      // KL = sum qt (log qt - log qs) = sum qt ((t - tmax)/T - (z - zmax)/T) - log s3 + log s2
      float* es = z;  // after the cross term, z is replaced by exp((z - zmax)/T)
      // sum e2 ((t - tmax) - (z - zmax)), on centred values (no cancellation between two large sums)
      float* dd = e2 + Vv;
      for (int j = 0; j < Vv; ++j) dd[j] = (tz[j] - tmax) - (z[j] - zmax);
      const double cross = tk->row_dot(e2, dd, Vv);
      for (int j = 0; j < Vv; ++j) es[j] = (z[j] - zmax) * invT;
      k->exp(es, Vv);
      const double s2 = tk->row_sum(es, Vv);
      kl = cross / s3 * (double)invT - std::log(s3) + std::log(s2);
      // gradient: a_mlm/P (p - onehot) + a_kl T / P (qs - qt)
      const float c1 = (float)(a_mlm / P / s1), c2 = (float)(a_kl * Td / P / s2), c3 = (float)(a_kl * Td / P / s3);
      for (int j = 0; j < Vv; ++j) z[j] = c1 * e1[j] + c2 * es[j] - c3 * e2[j];
    } else {
      const float c1 = (float)(a_mlm / P / s1);
      for (int j = 0; j < Vv; ++j) z[j] = c1 * e1[j];
    }
    if (bt.labels) z[bt.labels[r]] -= (float)(a_mlm / P);
    rl[2 * r] = mlm;
    rl[2 * r + 1] = kl;
  });
  double mlm = 0, kl = 0;
  for (int r = 0; r < P; ++r) {
    mlm += rl[2 * r];
    kl += rl[2 * r + 1];
  }
  mlm /= P;
  kl /= P;
  *mlm_out = mlm;
  *kl_out = kl;
  const double loss = a_mlm * mlm + a_kl * Td * Td * kl;

  // ---- backward
  std::memset(gr, 0, nparams_ * sizeof(float));
  float* dlog = logits;
  float* dn = dh_.get((size_t)P * H);  // hg no longer needed
  if (opt_.tiedDecoder) {
    // logits = n word^T + b: dn = dlog word; dword = dlog^T n
    const float* Bp = pack(p + word_, Vv, H);
    matmul(dlog, Vv, Bp, dn, H, P, H, Vv, Epi::None, nullptr, nullptr, 0);
    if (shared) {
      weight_grad(dlog, P, Vv, nrm, H, gr + word_);
      colsum_add(dlog, P, Vv, gr + decoder_.b);
    }
  } else {
    linear_bwd(nrm, P, decoder_, dlog, dn, nullptr, shared);
  }
  ln_rows_bwd(dn, dn, xhatm, rm, P, mlmg_, mlmb_, shared);
  rows_parallel(P, [&](int r, int) { tk->gelu_bwd(dn + (size_t)r * H, hu + (size_t)r * H, H); });
  float* dsel = nrm;  // the normalised rows are no longer needed: dL/dhsel goes there
  linear_bwd(hsel, P, mlm_dense_, dn, dsel, nullptr, shared);
  std::memset(dx, 0, sizeof(float) * (size_t)M * H);
  for (int i = 0; i < P; ++i) {
    float* o = dx + (size_t)bt.positions[i] * H;
    const float* s = dsel + (size_t)i * H;
    for (int j = 0; j < H; ++j) o[j] += s[j];
  }
  return loss;
}

// Classification head on each sequence's first token (cls_head.h)
double Trainer::cls_head(const TrainBatch& bt, const float* x, float* dx, double* ce_out, double* kl_out) {
  const int B = bt.batch, S = bt.seq, M = B * S, H = cfg_.hidden, Lb = cfg_.classifierLabels;
  const float* p = p_.get();
  float* gr = g_.get();
  float* h0 = hsel_.get((size_t)B * H);
  float* pooled = pooled_.get((size_t)B * H);
  float* logits = logits_.get((size_t)B * Lb);
  float* dh0 = dh_.get((size_t)B * H);
  for (int b = 0; b < B; ++b) std::memcpy(h0 + (size_t)b * H, x + (size_t)b * S * H, sizeof(float) * H);
  ClsHeadWeights w;
  w.poolW = p + poolw_;
  w.poolB = p + poolb_;
  w.clsW = p + clsw_;
  w.clsB = p + clsb_;
  w.hidden = H;
  w.labels = Lb;
  w.relu = cfg_.poolerRelu;
  cls_head_forward(w, h0, B, pooled, logits);
  ClsTargets t;
  t.classes = bt.classes;
  t.teacher = bt.classTeacher;
  t.ceWeight = bt.ceWeight;
  t.klWeight = bt.klWeight;
  t.temperature = bt.temperature;
  const double loss = cls_head_loss(t, B, Lb, logits, ce_out, kl_out);
  std::memset(gr, 0, nparams_ * sizeof(float));
  cls_head_backward(w, h0, pooled, logits, B, ClsHeadGrads{gr + poolw_, gr + poolb_, gr + clsw_, gr + clsb_}, dh0);
  std::memset(dx, 0, sizeof(float) * (size_t)M * H);
  for (int b = 0; b < B; ++b) std::memcpy(dx + (size_t)b * S * H, dh0 + (size_t)b * H, sizeof(float) * H);
  return loss;
}

StepResult Trainer::compute_gradients(const TrainBatch& b) {
  validate(b);
  StepResult r;
  r.loss = forward_backward(b, &r.mlm, &r.kl, &r.hidden, &r.attention);
  r.gradNorm = std::sqrt(tk_->sumsq(g_.get(), nparams_));
  r.step = step_;
  return r;
}

StepResult Trainer::step(const TrainBatch& b) {
  StepResult r = compute_gradients(b);
  if (!std::isfinite(r.loss) || !std::isfinite(r.gradNorm))
    throw std::runtime_error("the loss or the gradient is not finite (loss " + std::to_string(r.loss) + "); no update was made");
  const int64_t t = step_ + 1;
  const float lr = lr_at(t);
  const float gscale = opt_.clipNorm > 0 && r.gradNorm > opt_.clipNorm ? (float)(opt_.clipNorm / (r.gradNorm + 1e-6)) : 1.0f;
  // bias corrections by the updates a parameter has had: all of them, or the shared part's since it thawed
  auto bc = [](float beta, int64_t n) { return (float)(1.0 - std::pow((double)beta, (double)n)); };
  const int64_t ts = t - opt_.sharedFrozenUntil;
  const float hlr = head_lr_at(t);
  struct Piece {
    size_t off, len;
    float wd, lr, bc1, bc2;
  };
  // a trainable layer the route did not run is left alone, as an optimizer skips a parameter without a
  // gradient (no decay, no moment update)
  std::vector<char> ran(layers_.size(), 0);
  for (int l : route_) ran[l] = 1;
  std::vector<Piece> pieces;
  for (const auto& kv : slots_) {
    const Slot& s = kv.second;
    if (s.frozen || (s.shared && !shared_trainable(t)) || (s.layer >= 0 && !ran[s.layer])) continue;
    const int64_t n = s.shared ? ts : t;
    for (size_t o = 0; o < s.len; o += 65536)
      pieces.push_back({s.off + o, s.len - o < 65536 ? s.len - o : 65536, s.decay ? opt_.weightDecay : 0.0f, s.head ? hlr : lr,
                        bc(opt_.beta1, n), bc(opt_.beta2, n)});
  }
  const TrainKernels* tk = tk_;
  float *p = p_.get(), *g = g_.get(), *m = m_.get(), *v = v_.get();
  const TrainOptions& o = opt_;
  pool_->parallel_for((int)pieces.size(), [&](int i, int) {
    const Piece& pc = pieces[i];
    tk->adamw(p + pc.off, m + pc.off, v + pc.off, g + pc.off, pc.len, pc.lr, o.beta1, o.beta2, o.eps, pc.wd, pc.bc1, pc.bc2, gscale);
  });
  step_ = t;
  r.lr = lr;
  r.step = step_;
  return r;
}

}  // namespace bort
