#include "encoder.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include "packing.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#ifdef BORT_PROFILE
// -DBORT_PROFILE: wall time per step of run() (summed over layers), printed at exit; one encoder only
#include <chrono>
#include <cstdio>
namespace {
struct Prof {
  double t[9] = {};
  int n = 0;
  ~Prof() {
    const char* nm[] = {"emb", "qkv", "attn", "o", "ln1", "in", "out", "ln2", "pool"};
    for (int i = 0; i < 9; ++i) std::fprintf(stderr, "%s %.3f ms/run\n", nm[i], t[i] / (n ? n : 1));
  }
} g_prof;
std::chrono::steady_clock::time_point g_t0;
inline void ptick(int i) {
  const auto t = std::chrono::steady_clock::now();
  if (i >= 0) g_prof.t[i] += std::chrono::duration<double, std::milli>(t - g_t0).count();
  g_t0 = t;
}
}  // namespace
#define PTICK(i) ptick(i)
#else
#define PTICK(i) ((void)0)
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define BORT_MMAP 1
#endif

namespace bort {

void AlignedFree::operator()(float* p) const {
#if defined(BORT_MMAP)
  if (mapped) {
    munmap(p, mapped);
    return;
  }
#endif
  std::free(p);
}

FloatBuf alloc_floats(size_t n) {
  size_t bytes = (n ? n : 1) * sizeof(float);
  bytes = (bytes + 63) / 64 * 64;
#if defined(BORT_MMAP)
  if (bytes >= ((size_t)1 << 20)) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return FloatBuf(static_cast<float*>(p), AlignedFree{bytes});
  }
#endif
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return FloatBuf(static_cast<float*>(p), AlignedFree{0});
}

float* Encoder::Buf::get(size_t want) {
  if (want > n || !p) {
    p = alloc_floats(want);
    n = want;
  }
  return p.get();
}

namespace {
std::string at_layer(const char* base, int l) { return std::string(base) + "." + std::to_string(l); }
int round_up(int x, int m) { return (x + m - 1) / m * m; }
}  // namespace

const float* Encoder::need(const WeightLookup& w, const std::string& name, size_t len) {
  size_t got = 0;
  const float* p = w(name, &got);
  if (!p) throw ConfigError("weight '" + name + "' is missing (expected a Float32Array of " + std::to_string(len) + ")");
  if (got != len)
    throw ConfigError("weight '" + name + "' has " + std::to_string(got) + " values, expected " + std::to_string(len));
  param_bytes_ += len * sizeof(float);
  return p;
}

FloatBuf Encoder::copy_vec(const WeightLookup& w, const std::string& name, size_t len) {
  const float* p = need(w, name, len);
  FloatBuf b = alloc_floats(len);
  std::memcpy(b.get(), p, len * sizeof(float));
  packed_bytes_ += len * sizeof(float);
  return b;
}

const QKernels* Encoder::need_qk() {
  if (!qk_) {
    const char* qerr = "no int8 kernels";
    if (!(qk_ = qkernels_active(&qerr))) throw ConfigError(qerr);
  }
  return qk_;
}

// The bias stays float, padded to a whole panel like the float path's.
Encoder::Linear Encoder::pack_bias(Linear& L, const WeightLookup& w, const std::vector<std::string>& bnames,
                                   const std::vector<int>& ns) {
  L.b = alloc_floats(round_up(L.N, k_->NR));
  int off = 0;
  for (size_t i = 0; i < bnames.size(); ++i) {
    std::memcpy(L.b.get() + off, need(w, bnames[i], ns[i]), sizeof(float) * ns[i]);
    off += ns[i];
  }
  for (int j = off; j < round_up(L.N, k_->NR); ++j) L.b.get()[j] = 0.0f;
  packed_bytes_ += L.q->bytes() + round_up(L.N, k_->NR) * sizeof(float);
  return std::move(L);
}

// int8: quantize + pack the weights (qlinear.cpp).
Encoder::Linear Encoder::pack_qlinear(Linear& L, const std::vector<PackSeg>& segs, const WeightLookup& w,
                                      const std::vector<std::string>& bnames, const std::vector<int>& ns) {
  std::vector<QSeg> qs;
  for (const PackSeg& p : segs) qs.push_back({p.p, p.n});
  L.q = make_qlinear(need_qk(), L.K, qs.data(), (int)qs.size());
  return pack_bias(L, w, bnames, ns);
}

// A static-scale int8 linear's input scale ("<linear>_as..." [1] beside "<linear>_w...", one per part of a
// fused projection, all equal: the parts read one input), or 0 when the linear quantizes dynamically.
float Encoder::static_input_scale(const WeightLookup& w, const std::vector<std::string>& wnames) {
  float sc = 0.0f;
  size_t given = 0;
  for (const std::string& n : wnames) {
    std::string aname = n;
    aname.replace(aname.find("_w"), 2, "_as");
    size_t len = 0;
    const float* p = w(aname, &len);
    if (!p) continue;
    if (len != 1) throw ConfigError("weight '" + aname + "' has " + std::to_string(len) + " values, expected 1 (a static input scale)");
    if (!(p[0] > 0.0f) || !std::isfinite(p[0]))
      throw ConfigError("weight '" + aname + "': static input scale " + std::to_string(p[0]) + " (must be finite and > 0)");
    if (given > 0 && p[0] != sc) throw ConfigError("weight '" + aname + "': the parts of one fused projection have different static input scales");
    sc = p[0];
    ++given;
    param_bytes_ += sizeof(float);
  }
  if (given > 0 && given != wnames.size()) throw ConfigError("weight '" + wnames[0] + "': static and dynamic parts in one fused projection");
  return sc;
}

Encoder::Linear Encoder::pack_linear(const WeightLookup& w, const std::vector<std::string>& wnames,
                                     const std::vector<std::string>& bnames, int K, const std::vector<int>& ns, bool int8) {
  Linear L;
  L.K = K;
  // int8 weights given (a quantized file's): all of the linear's parts, each with its scales
  size_t given = 0;
  for (const std::string& n : wnames) {
    size_t len = 0;
    if (i8_ && i8_(n, &len)) ++given;
  }
  if (given > 0) {
    if (given != wnames.size()) throw ConfigError("weight '" + wnames[0] + "': int8 and float32 parts in one fused projection");
    std::vector<QSegI8> qs;
    for (size_t i = 0; i < wnames.size(); ++i) {
      size_t len = 0;
      const int8_t* q = i8_(wnames[i], &len);
      if (len != (size_t)K * ns[i])
        throw ConfigError("weight '" + wnames[i] + "' has " + std::to_string(len) + " int8 values, expected " + std::to_string((size_t)K * ns[i]));
      std::string sname = wnames[i];
      const size_t u = sname.find("_w");
      sname.replace(u, 2, "_ws");
      qs.push_back({q, need(w, sname, ns[i]), ns[i]});
      param_bytes_ += len;
      L.N += ns[i];
    }
    try {
      L.q = make_qlinear_int8(need_qk(), K, qs.data(), (int)qs.size());
    } catch (const std::invalid_argument& e) {
      throw ConfigError("weight '" + wnames[0] + "': " + e.what());
    }
    L.q->in_scale = static_input_scale(w, wnames);
    return pack_bias(L, w, bnames, ns);
  }
  std::vector<PackSeg> segs;
  for (size_t i = 0; i < wnames.size(); ++i) {
    const float* p = need(w, wnames[i], (size_t)K * ns[i]);
    segs.push_back({p, ns[i], (size_t)ns[i]});
    L.N += ns[i];
  }
  if (int8) return pack_qlinear(L, segs, w, bnames, ns);
  const int NR = k_->NR;
  const size_t psz = packed_size(K, L.N, NR);
  L.w = alloc_floats(psz);
  // packing is split by panels over the pool (the constructor runs on the JS thread: keep it short)
  const int panels = (L.N + NR - 1) / NR;
  const int parts = panels < 4 * pool_->size() ? panels : 4 * pool_->size();
  const int per = (panels + parts - 1) / parts;
  float* dst = L.w.get();
  const int KC = k_->KC;
  pool_->parallel_for(parts, [&](int t, int) {
    pack_b_panels(dst, K, segs.data(), (int)segs.size(), NR, KC, t * per, (t + 1) * per);
  });
  const int npad = round_up(L.N, NR);
  L.b = alloc_floats(npad);
  float* b = L.b.get();
  int off = 0;
  for (size_t i = 0; i < bnames.size(); ++i) {
    const float* p = need(w, bnames[i], ns[i]);
    std::memcpy(b + off, p, sizeof(float) * ns[i]);
    off += ns[i];
  }
  for (int j = off; j < npad; ++j) b[j] = 0.0f;
  packed_bytes_ += (psz + npad) * sizeof(float);
  return L;
}

Encoder::Encoder(const EncoderConfig& cfg, const WeightLookup& w, const Kernels* kernels, const Int8Lookup& i8)
    : cfg_(cfg), k_(kernels), i8_(i8) {
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
  if ((int)cfg.lnEps.size() != 2 * cfg.layers)
    throw ConfigError("config.lnEps must have 2 entries per layer (" + std::to_string(2 * cfg.layers) + "), got " +
                      std::to_string(cfg.lnEps.size()));
  if (cfg.classifierLabels < 0) throw ConfigError("config.classifier.labels must be a positive integer");
  if (cfg.classifierLabels > 0 && !cfg.pooler) throw ConfigError("config.classifier needs config.pooler (the classifier reads the pooled output)");
  if (cfg.tokenLabels < 0) throw ConfigError("config.tokenClassifier.labels must be a positive integer");
  if (cfg.poolerRelu && !cfg.pooler) throw ConfigError("config.poolerActivation needs config.pooler");
  if (std::isnan(cfg.maskValue) || cfg.maskValue == INFINITY || (!cfg.maskSelect && std::isinf(cfg.maskValue)))
    throw ConfigError("config.maskValue must be finite (or -Infinity with config.maskSelect)");
  if (cfg.threads < 1 || cfg.threads > kMaxThreads)
    throw ConfigError("config.threads must be an integer in [1, " + std::to_string(kMaxThreads) + "], got " +
                      std::to_string(cfg.threads));
  const size_t H = cfg.hidden, Wd = (size_t)cfg.heads * cfg.headSize, I = cfg.intermediate, V = cfg.vocab;
  pool_.reset(new ThreadPool(cfg_.threads));
  if (cfg.int8) {
    need_qk();
    word_q_ = make_qtable(need(w, "word_emb", V * H), V, (int)H);
    pos_q_ = make_qtable(need(w, "pos_emb", (size_t)cfg.maxPositions * H), cfg.maxPositions, (int)H);
    packed_bytes_ += word_q_.bytes() + pos_q_.bytes();
  } else {
    word_ = copy_vec(w, "word_emb", V * H);
    pos_ = copy_vec(w, "pos_emb", (size_t)cfg.maxPositions * H);
  }
  if (cfg.typeVocab > 0) type_ = copy_vec(w, "type_emb", (size_t)cfg.typeVocab * H);
  emb_g_ = copy_vec(w, "emb_ln_g", H);
  emb_b_ = copy_vec(w, "emb_ln_b", H);
  layers_.resize(cfg.layers);
  for (int l = 0; l < cfg.layers; ++l) {
    Layer& L = layers_[l];
    L.qkv = pack_linear(w, {at_layer("q_w", l), at_layer("k_w", l), at_layer("v_w", l)},
                        {at_layer("q_b", l), at_layer("k_b", l), at_layer("v_b", l)}, (int)H, {(int)Wd, (int)Wd, (int)Wd}, cfg.int8);
    L.o = pack_linear(w, {at_layer("o_w", l)}, {at_layer("o_b", l)}, (int)Wd, {(int)H}, cfg.int8);
    L.ln1g = copy_vec(w, at_layer("ln1_g", l), H);
    L.ln1b = copy_vec(w, at_layer("ln1_b", l), H);
    L.in = pack_linear(w, {at_layer("ffn_in_w", l)}, {at_layer("ffn_in_b", l)}, (int)H, {(int)I}, cfg.int8);
    L.out = pack_linear(w, {at_layer("ffn_out_w", l)}, {at_layer("ffn_out_b", l)}, (int)I, {(int)H}, cfg.int8);
    L.ln2g = copy_vec(w, at_layer("ln2_g", l), H);
    L.ln2b = copy_vec(w, at_layer("ln2_b", l), H);
  }
  if (cfg.pooler) pooler_ = pack_linear(w, {"pooler_w"}, {"pooler_b"}, (int)H, {(int)H}, cfg.int8);
  if (cfg.mlm) {
    mlm_dense_ = pack_linear(w, {"mlm_w"}, {"mlm_b"}, (int)H, {(int)H});
    mlm_g_ = copy_vec(w, "mlm_ln_g", H);
    mlm_b_ = copy_vec(w, "mlm_ln_b", H);
    decoder_ = pack_linear(w, {"decoder_w"}, {"decoder_b"}, (int)H, {(int)V}, cfg.int8);
  }
  if (cfg.classifierLabels > 0) cls_ = pack_linear(w, {"cls_w"}, {"cls_b"}, (int)H, {cfg.classifierLabels});
  if (cfg.tokenLabels > 0) tok_ = pack_linear(w, {"tok_w"}, {"tok_b"}, (int)H, {cfg.tokenLabels});
  for (int l = 0; l < cfg.layers; ++l) {
    layers_[l].qkv.slot = 4 * l;
    layers_[l].o.slot = 4 * l + 1;
    layers_[l].in.slot = 4 * l + 2;
    layers_[l].out.slot = 4 * l + 3;
  }
  const int top = 4 * cfg.layers;
  pooler_.slot = top;
  mlm_dense_.slot = top + 1;
  decoder_.slot = top + 2;
  cls_.slot = top + 3;
  tok_.slot = top + 4;
  // an int8 key projection: the bound from its dequantized int8 weights (packing.h)
  key_bound_ = key_norm_bounds(cfg_, w, [&](int l, int h) -> double {
    const Linear& qkv = layers_[l].qkv;
    if (!qkv.q) return -1.0;
    const int d = cfg_.headSize;
    // a static-scale linear's column scales hold the input scale too (qlinear.h): the weight's own is the quotient
    const double in_s = qkv.q->in_scale > 0.0f ? (double)qkv.q->in_scale : 1.0;
    double s = 0;
    for (int j = 0; j < d; ++j) {
      const int n = (int)Wd + h * d + j;
      const double sc = qkv.q->scale[n] / in_s;
      for (int k = 0; k < (int)H; ++k) {
        const double v = sc * qlinear_weight(*qkv.q, k, n);
        s += v * v;
      }
    }
    return std::sqrt(s);
  }, [&](int l) -> double { return layers_[l].qkv.q ? (double)layers_[l].qkv.q->in_scale : 0.0; });
  i8_ = nullptr;
#if defined(__GLIBC__)
  // packing's transient buffers (quantized copies, a fused projection's int8 side by side) sit in
  // malloc's arenas once freed; hand them back so that resident memory after load is the weights'
  malloc_trim(0);
#endif
  if (const char* p = std::getenv("BORT_PACK")) packing = std::strcmp(p, "0") != 0;
  want_threads_.store(cfg_.threads);
}

Encoder::~Encoder() = default;

void Encoder::embed_row(float* y, int id, int pos, const float* type_row) const {
  const int H = cfg_.hidden;
  if (word_q_.cols == 0) {
    k_->add3(y, word_.get() + (size_t)id * H, pos_.get() + (size_t)pos * H, type_row, H);
    return;
  }
  const int8_t* q = word_q_.row(id);
  const int8_t* p = pos_q_.row(pos);
  const float s = word_q_.scale[id], ps = pos_q_.scale[pos];
  if (type_row)
    for (int i = 0; i < H; ++i) y[i] = s * (float)q[i] + ps * (float)p[i] + type_row[i];
  else
    for (int i = 0; i < H; ++i) y[i] = s * (float)q[i] + ps * (float)p[i];
}

bool Encoder::closed() const { return closed_.load(); }

bool Encoder::released() const {
  std::lock_guard<std::mutex> lk(state_mu_);
  return released_;
}

// Never blocks on a run in flight: marks the encoder closed (later and queued runs then fail) and
// frees now when no run is in flight, else the run in flight frees everything when it ends (run()
// and close() decide under state_mu_, so exactly one of them does it).
void Encoder::close() {
  {
    std::lock_guard<std::mutex> st(state_mu_);
    closed_.store(true);
    if (running_ || released_) return;
  }
  // no run in flight, and none can start (closed_ is set): a run() waiting for mu_ only checks closed_
  std::lock_guard<std::mutex> lk(mu_);
  release_locked();
}

void Encoder::release_locked() {
  {
    std::lock_guard<std::mutex> st(state_mu_);
    if (released_) return;
    released_ = true;
  }
  pool_.reset();
  word_.reset(); pos_.reset(); type_.reset(); emb_g_.reset(); emb_b_.reset();
  word_q_ = QTable();
  pos_q_ = QTable();
  layers_.clear();
  layers_.shrink_to_fit();
  pooler_ = Linear(); mlm_dense_ = Linear(); decoder_ = Linear(); cls_ = Linear(); tok_ = Linear();
  mlm_g_.reset(); mlm_b_.reset();
  for (Buf* b : {&x_, &tmp_, &qkv_, &ctx_, &inter_, &madd_, &pooled_, &apack_}) *b = Buf();
  pk_.clear(); pv_.clear(); sc_.clear(); ws_.clear();
  masked_.clear();
  masked_.shrink_to_fit();
  qs_ = QScratch();
}

// Takes effect at the start of the next run (never blocks on a run in flight).
void Encoder::set_threads(int n) {
  if (n < 1 || n > kMaxThreads)
    throw ConfigError("threads must be an integer in [1, " + std::to_string(kMaxThreads) + "], got " + std::to_string(n));
  if (closed_) throw std::runtime_error("this encoder is closed");
  want_threads_.store(n);
}

int Encoder::threads() const { return want_threads_.load(); }

void Encoder::validate(const RunInputs& in) const {
  if (in.batch <= 0) throw InputTypeError("batch must be a positive integer, got " + std::to_string(in.batch));
  if (in.seq <= 0) throw InputTypeError("seq must be a positive integer, got " + std::to_string(in.seq));
  if (in.seq > cfg_.maxPositions)
    throw InputRangeError("seq " + std::to_string(in.seq) + " exceeds the model's " + std::to_string(cfg_.maxPositions) + " positions");
  if (!in.ids) throw InputTypeError("ids is required");
  const size_t n = (size_t)in.batch * in.seq;
  for (size_t i = 0; i < n; ++i) {
    const int32_t v = in.ids[i];
    if (v < 0 || v >= cfg_.vocab)
      throw InputRangeError("ids[" + std::to_string(i) + "] = " + std::to_string(v) + " is outside the vocabulary [0, " +
                            std::to_string(cfg_.vocab) + ")");
  }
  if (in.positions) {
    for (size_t i = 0; i < n; ++i) {
      const int32_t v = in.positions[i];
      if (v < 0 || v >= cfg_.maxPositions)
        throw InputRangeError("positions[" + std::to_string(i) + "] = " + std::to_string(v) + " is outside the position table [0, " +
                              std::to_string(cfg_.maxPositions) + ")");
    }
  }
  if (in.types) {
    if (cfg_.typeVocab == 0) throw InputTypeError("types were given but the model has no token-type embeddings; pass types: null");
    for (size_t i = 0; i < n; ++i) {
      const int32_t v = in.types[i];
      if (v < 0 || v >= cfg_.typeVocab)
        throw InputRangeError("types[" + std::to_string(i) + "] = " + std::to_string(v) + " is outside the token types [0, " +
                              std::to_string(cfg_.typeVocab) + ")");
    }
  }
}

// ---------------------------------------------------------------- parallel building blocks

void Encoder::gemm_raw(const GemmArgs& g) {
  const int T = pool_->size();
  const int MR = k_->MR, NR = k_->NR;
  const int npan = (g.N + NR - 1) / NR;
  // M blocks of at most MC rows (one block for the usual M <= 240: each weight is read once),
  // even sizes, whole micro-tiles
  const int mblocks = (g.M + k_->MC - 1) / k_->MC;
  const int msz = round_up((g.M + mblocks - 1) / mblocks, MR);
  const int mb = (g.M + msz - 1) / msz;
  // N chunks so that there are about 4 tasks per thread (one thread: one chunk)
  int nchunks = T == 1 ? 1 : (4 * T + mb - 1) / mb;
  if (nchunks > npan) nchunks = npan;
  if (nchunks < 1) nchunks = 1;
  const int pchunk = (npan + nchunks - 1) / nchunks;
  nchunks = (npan + pchunk - 1) / pchunk;
  const Kernels* k = k_;
  GemmArgs ga = g;
  if (nchunks > 1 && !g.Ap && !k->direct_a) {
    // several tasks share each A block: pack A once, in parallel, instead of once per task
    // (kernels with direct_a read A in place: no pack pass, no extra barrier)
    const int tiles = (g.M + MR - 1) / MR;
    float* ap = apack_.get((size_t)tiles * MR * g.K);
    const int parts = tiles < 2 * T ? tiles : 2 * T;
    const int per = (tiles + parts - 1) / parts;
    pool_->parallel_for(parts, [&](int t, int) {
      const int m0 = t * per * MR;
      int m1 = (t + 1) * per * MR;
      if (m1 > g.M) m1 = g.M;
      if (m0 < m1) k->pack_a(g.A, g.lda, m0, m1, g.K, ap);
    });
    ga.Ap = ap;
  }
  pool_->parallel_for(mb * nchunks, [&](int t, int tid) {
    const int mi = t / nchunks, ni = t % nchunks;
    const int m0 = mi * msz, m1 = m0 + msz < g.M ? m0 + msz : g.M;
    const int n0 = ni * pchunk * NR;
    int n1 = (ni + 1) * pchunk * NR;
    if (n1 > g.N) n1 = g.N;
    k->gemm_tile(ga, m0, m1, n0, n1, ws_[tid].p.get());
  });
}

void Encoder::gemm(const float* A, size_t lda, const Linear& L, float* C, size_t ldc, int M, Epi epi, const float* R,
                   size_t ldr) {
  if (recording_) record_rows(A, lda, M, L.K, L.slot);
  if (L.q) {
    // tanh (the pooler's) has no int8 epilogue: bias in the tile, then tanh over the rows
    const Epi qe = epi == Epi::BiasTanh ? Epi::Bias : epi;
    const bool ready = prequant_.L == &L && prequant_.A == A && prequant_.lda == lda && prequant_.M == M;
    prequant_ = Prequant();
    if (ready) qlinear_run_quantized(*pool_, *L.q, C, ldc, M, qe, L.b.get(), R, ldr, k_->gelu, qs_);
    else qlinear_run(*pool_, *L.q, A, lda, C, ldc, M, qe, L.b.get(), R, ldr, k_->gelu, qs_);
    if (epi == Epi::BiasTanh)
      for (int i = 0; i < M; ++i) k_->tanh(C + (size_t)i * ldc, L.N);
    return;
  }
  GemmArgs g;
  g.A = A;
  g.lda = lda;
  g.B = L.w.get();
  g.C = C;
  g.ldc = ldc;
  g.M = M;
  g.N = L.N;
  g.K = L.K;
  g.epi = epi;
  g.bias = L.b.get();
  g.R = R;
  g.ldr = ldr;
  gemm_raw(g);
}

void Encoder::record_rows(const float* A, size_t lda, int M, int K, int slot) {
  if (slot < 0) return;
  std::vector<float>& v = maxima_[slot];
  for (int i = 0; i < M; ++i) {
    const float* r = A + (size_t)i * lda;
    float mx = 0.0f;
    for (int k = 0; k < K; ++k) mx = std::fmax(mx, std::fabs(r[k]));
    v.push_back(mx);
  }
}

void Encoder::record_input_maxima(bool on) {
  std::lock_guard<std::mutex> lk(mu_);
  recording_ = on;
  if (on && maxima_.empty()) maxima_.resize(input_maxima_slots());
}

std::vector<std::vector<float>> Encoder::take_input_maxima() {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::vector<float>> out(input_maxima_slots());
  if (!maxima_.empty()) out.swap(maxima_);
  if (recording_) maxima_.resize(input_maxima_slots());
  return out;
}

void Encoder::layernorm_rows(float* y, size_t ldy, const float* x, size_t ldx, int M, const float* g, const float* b,
                             float eps, const Linear* next) {
  const int T = pool_->size();
  const int chunks = M < 2 * T ? M : 2 * T;
  const int per = (M + chunks - 1) / chunks;
  const int n = cfg_.hidden;
  const Kernels* k = k_;
  const bool quant = prequantize(next, y, ldy, M);
  pool_->parallel_for(chunks, [&](int t, int) {
    const int r1 = (t + 1) * per < M ? (t + 1) * per : M;
    for (int r = t * per; r < r1; ++r) {
      k->layernorm(y + (size_t)r * ldy, x + (size_t)r * ldx, g, b, n, eps);
      if (quant) qlinear_quantize_rows(*next->q, y + (size_t)r * ldy, ldy, r, r + 1, qs_);
    }
  });
}

bool Encoder::prequantize(const Linear* next, const float* A, size_t lda, int M) {
  prequant_ = Prequant();
  if (!next || !next->q || recording_) return false;
  qlinear_reserve(*next->q, M, qs_);
  prequant_.L = next;
  prequant_.A = A;
  prequant_.lda = lda;
  prequant_.M = M;
  return true;
}

void Encoder::ensure_scratch(int B, int S) {
  const size_t M = (size_t)B * S, H = cfg_.hidden, Wd = (size_t)cfg_.heads * cfg_.headSize, I = cfg_.intermediate;
  x_.get(M * H);
  tmp_.get(M * H);
  qkv_.get(M * 3 * Wd);
  ctx_.get(M * Wd);
  inter_.get(M * I);
  madd_.get(M);
  pooled_.get((size_t)B * H);
  const int T = pool_->size();
  pk_.resize(T);
  pv_.resize(T);
  sc_.resize(T);
  ws_.resize(T);
  qas_.resize(T);
  const int NR = k_->NR, d = cfg_.headSize;
  for (int t = 0; t < T; ++t) {
    pk_[t].get(packed_size(d, S, NR));
    pv_[t].get(packed_size(S, d, NR));
    sc_[t].get((size_t)64 * S);
    ws_[t].get((size_t)k_->MC * k_->KC);
  }
}

// Scores, mask, softmax and P·V for every (batch, head), query rows in blocks of 64. With avg, each
// task is one sequence with all its heads (so it alone writes that sequence's averaged map).
void Encoder::head_pack_kv(int tid, const float* k, const float* v, size_t ld, int S, const unsigned char* keep) {
  const int d = cfg_.headSize;
  if (int8_attention()) {
    qattn_prepare_kv(qk_, k, v, ld, S, d, keep, qas_[tid]);
    return;
  }
  pack_bt(pk_[tid].p.get(), d, S, k, ld, k_->NR, k_->KC);
  PackSeg seg{v, d, ld};
  pack_b(pv_[tid].p.get(), S, &seg, 1, k_->NR, k_->KC);
}

void Encoder::head_scores(int tid, const float* q, size_t ld, int qb, int S, float* sc) {
  const int d = cfg_.headSize;
  if (int8_attention()) {
    qattn_scores(qk_, q, ld, qb, S, d, qas_[tid], sc);
    return;
  }
  head_gemm(tid, q, ld, pk_[tid].p.get(), sc, S, qb, S, d);
}

void Encoder::head_gemm(int tid, const float* A, size_t lda, const float* B, float* C, size_t ldc, int M, int N, int K) {
  GemmArgs g;
  g.A = A;
  g.lda = lda;
  g.B = B;
  g.C = C;
  g.ldc = ldc;
  g.M = M;
  g.N = N;
  g.K = K;
  k_->gemm_tile(g, 0, M, 0, N, ws_[tid].p.get());
}

void Encoder::head_softmax_row(int tid, float* row, int r, int qb, int S, const float* madd, bool probs) {
  if (int8_attention()) {
    k_->softmax_q8(row, S, cfg_.scoreScale, madd, qattn_p_rows(qas_[tid], qb, S) + (size_t)r * qround4(S),
                   qattn_p_scales(qas_[tid], qb) + r, probs);
  } else {
    k_->softmax(row, S, cfg_.scoreScale, madd);
  }
}

void Encoder::head_context(int tid, const float* sc, int qb, int S, float* out, size_t ldo) {
  const int d = cfg_.headSize;
  if (int8_attention()) {
    qattn_context(qk_, qb, S, d, qas_[tid], out, ldo);
    return;
  }
  head_gemm(tid, sc, S, pv_[tid].p.get(), out, ldo, qb, d, S);
}

void Encoder::attention(int B, int S, float* avg) {
  const int heads = cfg_.heads, d = cfg_.headSize;
  const size_t Wd = (size_t)heads * d, ld = 3 * Wd;
  const float* qkv = qkv_.p.get();
  float* ctx = ctx_.p.get();
  const float* madd = madd_.p.get();
  // select mode: a masked key's score becomes 0 here, and 0 * scale + maskValue = maskValue exactly in
  // the softmax, which is what Where(mask == 0, maskValue, scores) gives
  const unsigned char* masked = cfg_.maskSelect ? masked_.data() : nullptr;
  const float inv_heads = 1.0f / (float)heads;
  const unsigned char* keep = keep_.empty() ? nullptr : keep_.data();
  auto one = [&](int b, int h, int tid) {
    const float* q = qkv + (size_t)b * S * ld + (size_t)h * d;
    float* sc = sc_[tid].p.get();
    head_pack_kv(tid, q + Wd, q + 2 * Wd, ld, S, keep ? keep + (size_t)b * S : nullptr);
    const float* mrow = madd + (size_t)b * S;
    for (int q0 = 0; q0 < S; q0 += 64) {
      const int qb = S - q0 < 64 ? S - q0 : 64;
      head_scores(tid, q + (size_t)q0 * ld, ld, qb, S, sc);
      if (masked) {
        const unsigned char* mk = masked + (size_t)b * S;
        for (int j = 0; j < S; ++j)
          if (mk[j])
            for (int r = 0; r < qb; ++r) sc[(size_t)r * S + j] = 0.0f;
      }
      for (int r = 0; r < qb; ++r) head_softmax_row(tid, sc + (size_t)r * S, r, qb, S, mrow, avg != nullptr);
      if (avg) {
        float* a = avg + ((size_t)b * S + q0) * S;
        for (size_t i = 0; i < (size_t)qb * S; ++i) a[i] = (h == 0 ? 0.0f : a[i]) + sc[i] * inv_heads;
      }
      head_context(tid, sc, qb, S, ctx + ((size_t)b * S + q0) * Wd + (size_t)h * d, Wd);
    }
  };
  if (avg) {
    pool_->parallel_for(B, [&](int b, int tid) {
      for (int h = 0; h < heads; ++h) one(b, h, tid);
    });
  } else {
    pool_->parallel_for(B * heads, [&](int task, int tid) { one(task / heads, task % heads, tid); });
  }
}

// ---------------------------------------------------------------- forward pass

void Encoder::run(const RunInputs& in, const RunOutputs& out) {
  std::lock_guard<std::mutex> lk(mu_);
  {
    std::lock_guard<std::mutex> st(state_mu_);
    if (closed_) throw std::runtime_error("this encoder is closed");
    running_ = true;
  }
  // a close() during this run leaves the freeing to the run: done when it ends, also on an exception
  struct EndRun {
    Encoder* e;
    ~EndRun() {
      bool release;
      {
        std::lock_guard<std::mutex> st(e->state_mu_);
        e->running_ = false;
        release = e->closed_.load();
      }
      if (e->run_end_hook_for_tests) e->run_end_hook_for_tests();
      if (release) e->release_locked();
    }
  } end_run{this};
  const int want = want_threads_.load();
  if (want != pool_->size()) {
    // the new pool first: when it cannot start, the encoder keeps the old one and its thread count
    std::unique_ptr<ThreadPool> p;
    try {
      p.reset(new ThreadPool(want));
    } catch (const std::exception& e) {
      int expected = want;  // unless setThreads asked for yet another count meanwhile
      want_threads_.compare_exchange_strong(expected, pool_->size());
      throw std::runtime_error(std::string(e.what()) + " (the encoder keeps " + std::to_string(pool_->size()) + ")");
    }
    pool_ = std::move(p);
    cfg_.threads = pool_->size();
  }
  validate(in);
  // the caller on its CPU and the workers on the others for the whole run (released on any exit)
  struct RunScope {
    ThreadPool* p;
    ~RunScope() { p->end_run(); }
  } run_scope{pool_.get()};
  pool_->begin_run();
  ensure_scratch(in.batch, in.seq);
  last_run_packed_ = false;
  PackPlan plan;
  // the packed path implements the stock BERT forward; explicit position ids, the Where (select) mask,
  // a ReLU pooler and a per-token head run padded (exact) until encoder_packed.cpp handles them
  const bool packable = !in.positions && !cfg_.maskSelect && !cfg_.poolerRelu && cfg_.tokenLabels == 0 && !out.layers && !out.attn;
  if (packing && packable && plan_packing(in, &plan) && forward_packed(in, out, plan)) {
    last_run_packed_ = true;
    return;
  }
  forward_padded(in, out);
  // padded positions read as zeros whichever path ran (documented on Encoder)
  const size_t rows = (size_t)in.batch * in.seq;
  zero_masked_rows(out.hidden, cfg_.hidden, in.mask, rows);
  if (cfg_.mlm) zero_masked_rows(out.mlm, cfg_.vocab, in.mask, rows);
  if (cfg_.tokenLabels > 0 && out.tok) zero_masked_rows(out.tok, cfg_.tokenLabels, in.mask, rows);
  for (int l = 0; l < cfg_.layers; ++l) {
    if (out.layers) zero_masked_rows(out.layers + (size_t)l * rows * cfg_.hidden, cfg_.hidden, in.mask, rows);
    if (out.attn) zero_masked_rows(out.attn + (size_t)l * rows * in.seq, in.seq, in.mask, rows);
  }
}

void Encoder::forward_padded(const RunInputs& in, const RunOutputs& out) {
  const int B = in.batch, S = in.seq, M = B * S;
  const int H = cfg_.hidden, Wd = cfg_.heads * cfg_.headSize;
  float* x = x_.p.get();
  float* tmp = tmp_.p.get();
  float* qkv = qkv_.p.get();
  float* ctx = ctx_.p.get();
  float* inter = inter_.p.get();
  float* madd = madd_.p.get();
  const Kernels* k = k_;

  // the mask, exactly as the graph: added (1 - mask) * maskValue, or maskValue in place of the scores
  // of keys whose mask is 0
  if (cfg_.maskSelect) {
    masked_.assign((size_t)M, 0);
    for (int i = 0; i < M; ++i) {
      const bool m0 = in.mask && in.mask[i] == 0;
      masked_[i] = m0 ? 1 : 0;
      madd[i] = m0 ? cfg_.maskValue : 0.0f;
    }
  } else {
    for (int i = 0; i < M; ++i) {
      const float m = in.mask ? (float)in.mask[i] : 1.0f;
      madd[i] = (1.0f - m) * cfg_.maskValue;
    }
  }

  // int8 attention leaves padded keys out of V's scales (qattention.h)
  keep_.clear();
  if (int8_attention() && in.mask) {
    keep_.resize((size_t)M);
    for (int i = 0; i < M; ++i) keep_[i] = in.mask[i] != 0;
  }

  // embeddings: word + type + position, LayerNorm
  PTICK(-1);
  {
    const int T = pool_->size();
    const int chunks = M < 2 * T ? M : 2 * T;
    const int per = (M + chunks - 1) / chunks;
    const float* type = type_.get();
    const bool quant = cfg_.layers > 0 && prequantize(&layers_[0].qkv, x, H, M);
    pool_->parallel_for(chunks, [&](int t, int) {
      const int r1 = (t + 1) * per < M ? (t + 1) * per : M;
      for (int r = t * per; r < r1; ++r) {
        const int s = in.positions ? in.positions[r] : r % S;
        float* y = x + (size_t)r * H;
        const float* tv = type ? type + (size_t)(in.types ? in.types[r] : 0) * H : nullptr;
        embed_row(y, in.ids[r], s, tv);
        k->layernorm(y, y, emb_g_.get(), emb_b_.get(), H, cfg_.embLnEps);
        if (quant) qlinear_quantize_rows(*layers_[0].qkv.q, y, H, r, r + 1, qs_);
      }
    });
  }

  PTICK(0);
  const int L = cfg_.layers;
  float* xfinal = x;
  for (int l = 0; l < L; ++l) {
    const Layer& ly = layers_[l];
    gemm(x, H, ly.qkv, qkv, 3 * (size_t)Wd, M, Epi::Bias);
    PTICK(1);
    attention(B, S, out.attn ? out.attn + (size_t)l * M * S : nullptr);
    PTICK(2);
    gemm(ctx, Wd, ly.o, tmp, H, M, Epi::BiasResid, x, H);
    PTICK(3);
    layernorm_rows(x, H, tmp, H, M, ly.ln1g.get(), ly.ln1b.get(), cfg_.lnEps[2 * l], &ly.in);
    PTICK(4);
    gemm(x, H, ly.in, inter, cfg_.intermediate, M, Epi::BiasGelu);
    PTICK(5);
    gemm(inter, cfg_.intermediate, ly.out, tmp, H, M, Epi::BiasResid, x, H);
    PTICK(6);
    float* dst = (l == L - 1 && out.hidden) ? out.hidden : x;
    layernorm_rows(dst, H, tmp, H, M, ly.ln2g.get(), ly.ln2b.get(), cfg_.lnEps[2 * l + 1], l + 1 < L ? &layers_[l + 1].qkv : nullptr);
    PTICK(7);
    xfinal = dst;
    if (out.layers) std::memcpy(out.layers + (size_t)l * M * H, dst, sizeof(float) * (size_t)M * H);
  }
  if (out.hidden && xfinal != out.hidden) std::memcpy(out.hidden, xfinal, sizeof(float) * (size_t)M * H);

  if (cfg_.pooler && (out.pooled || out.cls)) {
    float* pooled = out.pooled ? out.pooled : pooled_.p.get();
    // the [CLS] row of each sequence: row b*S, so A = xfinal with row stride S*H
    gemm(xfinal, (size_t)S * H, pooler_, pooled, H, B, cfg_.poolerRelu ? Epi::Bias : Epi::BiasTanh);
    if (cfg_.poolerRelu)
      for (size_t i = 0; i < (size_t)B * H; ++i) pooled[i] = pooled[i] > 0.0f ? pooled[i] : 0.0f;
    if (cfg_.classifierLabels > 0 && out.cls) gemm(pooled, H, cls_, out.cls, cfg_.classifierLabels, B, Epi::Bias);
  }
  PTICK(8);
#ifdef BORT_PROFILE
  g_prof.n++;
#endif
  if (cfg_.mlm && out.mlm) {
    gemm(xfinal, H, mlm_dense_, tmp, H, M, Epi::BiasGelu);
    layernorm_rows(tmp, H, tmp, H, M, mlm_g_.get(), mlm_b_.get(), cfg_.mlmLnEps);
    gemm(tmp, H, decoder_, out.mlm, cfg_.vocab, M, Epi::Bias);
  }
  if (cfg_.tokenLabels > 0 && out.tok) gemm(xfinal, H, tok_, out.tok, cfg_.tokenLabels, M, Epi::Bias);
  if (cfg_.maskSelect && std::isinf(cfg_.maskValue)) nan_fully_masked(in, out);
}

// Select mode with a fill of -infinity: a sequence whose mask is 0 everywhere has every score at
// -infinity, which onnxruntime's softmax turns into NaN, and NaN then fills all of that sequence's
// outputs. The kernels' exp does not carry NaN through, so those rows are written here.
void Encoder::nan_fully_masked(const RunInputs& in, const RunOutputs& out) {
  if (!in.mask) return;
  const int B = in.batch, S = in.seq;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto fill = [&](float* p, size_t b, size_t per) {
    if (p) std::fill(p + b * per, p + (b + 1) * per, nan);
  };
  for (int b = 0; b < B; ++b) {
    bool any = false;
    for (int j = 0; j < S && !any; ++j) any = in.mask[(size_t)b * S + j] != 0;
    if (any) continue;
    fill(out.hidden, b, (size_t)S * cfg_.hidden);
    if (cfg_.pooler) fill(out.pooled, b, (size_t)cfg_.hidden);
    if (cfg_.mlm) fill(out.mlm, b, (size_t)S * cfg_.vocab);
    if (cfg_.classifierLabels) fill(out.cls, b, (size_t)cfg_.classifierLabels);
    if (cfg_.tokenLabels) fill(out.tok, b, (size_t)S * cfg_.tokenLabels);
  }
}

}  // namespace bort
