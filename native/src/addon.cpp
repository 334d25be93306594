// N-API binding (node-addon-api; NAPI_CPP_EXCEPTIONS + NODE_ADDON_API_CPP_EXCEPTIONS_ALL: any C++ exception
// that reaches the boundary becomes a JS Error).
//
//   createEncoder(config, weights) -> NativeEncoder            (packs on the calling thread)
//   createEncoderAsync(config, weights) -> Promise<NativeEncoder> (packs on a libuv thread; the weights
//                                          must stay untouched until the promise settles)
//   handle.run({ ids, mask, types, positions, batch, seq, intermediates? }) -> Promise<{ hidden, pooled?, mlm?, cls?, tok?,
//       layers?, attention?, skippedPadding }>   intermediates: true adds every layer's output [layers, batch, seq,
//       hidden] and its head-averaged attention probabilities [layers, batch, seq, seq] (encoder.h RunOutputs)
//   handle.close(), handle.setThreads(n), handle.threads
//   isa() -> "avx512" | "avx2" | "neon" | "scalar"   (BORT_ISA forces one)
//   isas() -> the ISAs this CPU and build can run
//   maxThreads -> the largest thread count an encoder accepts (bort::kMaxThreads)
//   _testFault("alloc" | "resolve") -> the next run fails there (tests of the failure paths only)
//   _outputPool() -> { slabsMapped, slabsReused, spare, live }: where run outputs come from (output_pool.h)
#include <napi.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "encoder.h"
#include "output_pool.h"

// the training binding (train/train_addon.cpp) reads configurations and picks kernels as createEncoder does
namespace bort_train {
void init_binding(Napi::Env env, Napi::Object exports, bort::EncoderConfig (*parse)(Napi::Env, Napi::Value),
                  const bort::Kernels* (*kernels)(Napi::Env));
}

namespace {

using bort::Encoder;

const bort::Kernels* kernels_or_throw(Napi::Env env) {
  const char* err = nullptr;
  const bort::Kernels* k = bort::active_kernels(&err);
  if (!k) throw Napi::Error::New(env, err ? err : "no kernel table available");
  return k;
}

// An integer-valued double in [lo, hi]; the range is tested before any conversion (a double outside
// the target type's range, NaN or an infinity must never be cast).
bool is_int_in(double d, double lo, double hi) { return d >= lo && d <= hi && std::trunc(d) == d; }

// The largest Float32Array V8 makes (v8::TypedArray::kMaxLength is 2^32 on 64-bit builds; one less
// keeps clear of it on every Node version).
constexpr size_t kMaxOutputFloats = ((size_t)1 << 32) - 1;

std::string js_text(Napi::Value v) { return v.ToString().Utf8Value(); }

// ---------------------------------------------------------------- config parsing
double get_number(Napi::Object o, const char* key, bool required, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw Napi::TypeError::New(o.Env(), std::string("config.") + key + " is required");
    return dflt;
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("config.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int get_int(Napi::Object o, const char* key, bool required, int dflt, int minv) {
  double d = get_number(o, key, required, dflt);
  if (!is_int_in(d, minv, 2147483647.0))
    throw Napi::TypeError::New(o.Env(), std::string("config.") + key + " must be an integer >= " + std::to_string(minv) +
                                            ", got " + js_text(Napi::Number::New(o.Env(), d)));
  return (int)d;
}

// A finite number that a float holds (a double beyond the float range must not be converted: undefined
// behaviour; NaN or an infinity would poison every output).
float get_float(Napi::Object o, const char* key, bool required, double dflt) {
  double d = get_number(o, key, required, dflt);
  if (!(d >= -3.4028234663852886e38 && d <= 3.4028234663852886e38))
    throw Napi::TypeError::New(o.Env(), std::string("config.") + key + " must be a finite number within the float range, got " +
                                            js_text(Napi::Number::New(o.Env(), d)));
  return (float)d;
}

// threads: a number (TypeError otherwise) that is an integer in [1, kMaxThreads] (RangeError otherwise)
int threads_from(Napi::Env env, Napi::Value v, const char* what) {
  const std::string range = "[1, " + std::to_string(bort::kMaxThreads) + "]";
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " must be an integer in " + range + ", got " + js_text(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!is_int_in(d, 1, bort::kMaxThreads))
    throw Napi::RangeError::New(env, std::string(what) + " must be an integer in " + range + ", got " + js_text(v));
  return (int)d;
}

bort::EncoderConfig parse_config(Napi::Env env, Napi::Value cv) {
  if (!cv.IsObject()) throw Napi::TypeError::New(env, "createEncoder(config, weights): config must be an object");
  Napi::Object c = cv.As<Napi::Object>();
  bort::EncoderConfig cfg;
  cfg.layers = get_int(c, "layers", true, 0, 1);
  cfg.heads = get_int(c, "heads", true, 0, 1);
  cfg.headSize = get_int(c, "headSize", true, 0, 1);
  cfg.hidden = get_int(c, "hidden", true, 0, 1);
  cfg.intermediate = get_int(c, "intermediate", true, 0, 1);
  cfg.vocab = get_int(c, "vocab", true, 0, 1);
  cfg.maxPositions = get_int(c, "maxPositions", true, 0, 1);
  cfg.typeVocab = get_int(c, "typeVocab", false, 0, 0);
  cfg.scoreScale = get_float(c, "scoreScale", true, 0);
  Napi::Value select = c.Get("maskSelect");
  cfg.maskSelect = select.IsBoolean() ? select.As<Napi::Boolean>().Value() : false;
  // the Where form may fill with -infinity (onnxruntime then gives NaN only for a sequence without tokens)
  if (cfg.maskSelect && get_number(c, "maskValue", true, 0) == -INFINITY) cfg.maskValue = -INFINITY;
  else cfg.maskValue = get_float(c, "maskValue", true, 0);
  cfg.embLnEps = get_float(c, "embLnEps", true, 0);
  Napi::Value eps = c.Get("lnEps");
  if (!eps.IsArray()) throw Napi::TypeError::New(env, "config.lnEps must be an array of 2 numbers per layer");
  Napi::Array ea = eps.As<Napi::Array>();
  for (uint32_t i = 0; i < ea.Length(); ++i) {
    Napi::Value e = ea.Get(i);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d >= -3.4028234663852886e38 && d <= 3.4028234663852886e38))
      throw Napi::TypeError::New(env, "config.lnEps[" + std::to_string(i) + "] must be a finite number within the float range, got " + js_text(e));
    cfg.lnEps.push_back((float)d);
  }
  Napi::Value pooler = c.Get("pooler");
  cfg.pooler = pooler.IsBoolean() ? pooler.As<Napi::Boolean>().Value() : false;
  Napi::Value act = c.Get("poolerActivation");
  if (act.IsString() && act.As<Napi::String>().Utf8Value() == "relu") cfg.poolerRelu = true;
  else if (!act.IsUndefined() && !act.IsNull() && !(act.IsString() && act.As<Napi::String>().Utf8Value() == "tanh"))
    throw Napi::TypeError::New(env, "config.poolerActivation must be 'tanh' or 'relu'");
  Napi::Value mlm = c.Get("mlm");
  if (mlm.IsObject()) {
    cfg.mlm = true;
    cfg.mlmLnEps = get_float(mlm.As<Napi::Object>(), "lnEps", true, 0);
  } else if (!mlm.IsUndefined() && !mlm.IsNull()) {
    throw Napi::TypeError::New(env, "config.mlm must be null or { lnEps }");
  }
  Napi::Value cls = c.Get("classifier");
  if (cls.IsObject()) {
    cfg.classifierLabels = get_int(cls.As<Napi::Object>(), "labels", true, 0, 1);
  } else if (!cls.IsUndefined() && !cls.IsNull()) {
    throw Napi::TypeError::New(env, "config.classifier must be null or { labels }");
  }
  Napi::Value tok = c.Get("tokenClassifier");
  if (tok.IsObject()) {
    cfg.tokenLabels = get_int(tok.As<Napi::Object>(), "labels", true, 0, 1);
  } else if (!tok.IsUndefined() && !tok.IsNull()) {
    throw Napi::TypeError::New(env, "config.tokenClassifier must be null or { labels }");
  }
  Napi::Value th = c.Get("threads");
  if (th.IsUndefined() || th.IsNull()) {
    unsigned hc = std::thread::hardware_concurrency();
    cfg.threads = hc == 0 ? 1 : hc > (unsigned)bort::kMaxThreads ? bort::kMaxThreads : (int)hc;
  } else {
    cfg.threads = threads_from(env, th, "config.threads");
  }
  // int8: undefined/false = float32; true = layer projections quantized at load (qlinear.h)
  Napi::Value q8 = c.Get("int8");
  if (q8.IsBoolean()) cfg.int8 = q8.As<Napi::Boolean>().Value();
  else if (!q8.IsUndefined()) throw Napi::TypeError::New(env, "config.int8 must be a boolean");
  // int8Attention: with int8 layers, Q·Kᵀ and P·V as int8 GEMMs too (qattention.h)
  Napi::Value qa = c.Get("int8Attention");
  if (qa.IsBoolean()) cfg.int8Attention = qa.As<Napi::Boolean>().Value();
  else if (!qa.IsUndefined()) throw Napi::TypeError::New(env, "config.int8Attention must be a boolean");
  return cfg;
}

// The weights as (data, length) by name, taken on the JS thread, with a reference to each array so
// that it outlives a packing that runs on another thread.
struct WeightTable {
  std::unordered_map<std::string, std::pair<const float*, size_t>> arrays;
  std::unordered_map<std::string, std::pair<const int8_t*, size_t>> int8s;  // a quantized file's int8 weights
  std::vector<Napi::ObjectReference> refs;

  WeightTable(Napi::Env env, Napi::Value wv) {
    if (!wv.IsObject()) throw Napi::TypeError::New(env, "createEncoder(config, weights): weights must be an object of Float32Array (or Int8Array for int8 weights)");
    Napi::Object w = wv.As<Napi::Object>();
    Napi::Array names = w.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); ++i) {
      Napi::Value key = names.Get(i);
      const std::string name = js_text(key);
      Napi::Value v = w.Get(key);
      if (v.IsUndefined() || v.IsNull()) continue;
      if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int8_array) {
        Napi::Int8Array a = v.As<Napi::Int8Array>();
        int8s[name] = {a.Data(), a.ElementLength()};
        refs.push_back(Napi::Persistent(static_cast<Napi::Object>(a)));
        continue;
      }
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw Napi::TypeError::New(env, "weight '" + name + "' must be a Float32Array (or an Int8Array for an int8 weight)");
      Napi::Float32Array a = v.As<Napi::Float32Array>();
      arrays[name] = {a.Data(), a.ElementLength()};
      refs.push_back(Napi::Persistent(static_cast<Napi::Object>(a)));
    }
  }

  bort::WeightLookup lookup() const {
    return [this](const std::string& name, size_t* len) -> const float* {
      auto it = arrays.find(name);
      if (it == arrays.end()) return nullptr;
      *len = it->second.second;
      return it->second.first;
    };
  }
  bort::Int8Lookup int8_lookup() const {
    if (int8s.empty()) return nullptr;
    return [this](const std::string& name, size_t* len) -> const int8_t* {
      auto it = int8s.find(name);
      if (it == int8s.end()) return nullptr;
      *len = it->second.second;
      return it->second.first;
    };
  }
};

// A failure of the C++ side, kept until it can become the matching JS error on the JS thread.
struct Failure {
  enum Kind { None, Type, Range, Plain } kind = None;
  std::string message;
  Napi::Error error(Napi::Env env) const {
    if (kind == Type) return Napi::TypeError::New(env, message);
    if (kind == Range) return Napi::RangeError::New(env, message);
    return Napi::Error::New(env, message);
  }
};

// Builds the encoder (validates the configuration, starts its pool, packs the weights); never throws.
std::shared_ptr<Encoder> build_encoder(const bort::EncoderConfig& cfg, const WeightTable& w, const bort::Kernels* k,
                                       Failure* f) {
  try {
    return std::make_shared<Encoder>(cfg, w.lookup(), k, w.int8_lookup());
  } catch (const bort::ConfigError& e) {
    *f = {Failure::Type, e.what()};
  } catch (const std::bad_alloc&) {
    *f = {Failure::Range, "out of memory while packing the weights"};
  } catch (const std::exception& e) {
    *f = {Failure::Plain, e.what()};
  }
  return nullptr;
}

enum class Fault { None, Alloc, Resolve };

struct Instance {
  Napi::FunctionReference encoderCtor;
  // Memory for run outputs (output_pool.h). Shared with the ArrayBuffers' finalizers, which may
  // outlive the instance data.
  std::shared_ptr<bort::OutputPool> outputs = std::make_shared<bort::OutputPool>();
  Fault fault = Fault::None;  // _testFault: the next run fails at this point (JS thread only)
  Fault take_fault(Fault f) {
    if (fault != f) return Fault::None;
    fault = Fault::None;
    return f;
  }
};

// Type tag of the External that carries a packed encoder from createEncoderAsync to the constructor.
const napi_type_tag kEncoderTag = {0x6b0e2c3f5a7d4e91ull, 0x8c1f3b2a9d4e6f70ull};

// ---------------------------------------------------------------- outputs
// One output buffer, allocated by the engine's allocator when its run starts (not when it is queued)
// and handed to JS as an external ArrayBuffer when the run has filled it.
struct PoolGive {
  std::shared_ptr<bort::OutputPool> pool;
  void operator()(float* p) const {
    if (pool) pool->give(p);
  }
};
using OutBuf = std::unique_ptr<float[], PoolGive>;
struct Output {
  const char* name;
  size_t floats;
  OutBuf buf;
};

// The outputs a run of this shape produces, with their sizes; an output too large for a Float32Array
// (or for size_t) is a RangeError that names it.
std::vector<Output> output_plan(const bort::EncoderConfig& c, size_t B, size_t S, bool intermediates, std::string* err) {
  std::vector<Output> outs;
  auto add = [&](const char* name, size_t a, size_t b, size_t n) {
    size_t ab = 0, abn = 0;
    if (__builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, n, &abn) || abn > kMaxOutputFloats) {
      if (err->empty())
        *err = std::string("output '") + name + "' of " + std::to_string(a) + " x " + std::to_string(b) + " x " +
               std::to_string(n) + " floats is larger than a Float32Array can be (" + std::to_string(kMaxOutputFloats) +
               " values); run a smaller batch or shorter sequences";
      return;
    }
    outs.push_back({name, abn, nullptr});
  };
  add("hidden", B, S, (size_t)c.hidden);
  if (c.pooler) add("pooled", B, 1, (size_t)c.hidden);
  if (c.mlm) add("mlm", B, S, (size_t)c.vocab);
  if (c.classifierLabels) add("cls", B, 1, (size_t)c.classifierLabels);
  if (c.tokenLabels) add("tok", B, S, (size_t)c.tokenLabels);
  if (intermediates) {
    size_t L_B = 0;
    if (__builtin_mul_overflow((size_t)c.layers, B, &L_B)) L_B = SIZE_MAX;
    add("layers", L_B, S, (size_t)c.hidden);
    add("attention", L_B, S, S);
  }
  return outs;
}

// The buffer as a Float32Array that owns it from now on; when V8 collects it, the memory goes back to
// its pool. Its size is reported to V8 as external memory, so that garbage outputs count toward V8's
// decisions to collect.
Napi::Float32Array to_js(Napi::Env env, Output& o) {
  const size_t bytes = o.floats * sizeof(float);
  float* data = o.buf.get();
  std::shared_ptr<bort::OutputPool> pool = o.buf.get_deleter().pool;
  Napi::ArrayBuffer ab;
  try {
    ab = Napi::ArrayBuffer::New(env, data, bytes, [pool, bytes](Napi::Env e, void* p) {
      Napi::MemoryManagement::AdjustExternalMemory(e, -(int64_t)bytes);
      pool->give(static_cast<float*>(p));
    });
    o.buf.release();  // the ArrayBuffer frees it now
    Napi::MemoryManagement::AdjustExternalMemory(env, (int64_t)bytes);
  } catch (const Napi::Error&) {
    // external buffers not allowed in this runtime: copy into one V8 allocates
    ab = Napi::ArrayBuffer::New(env, bytes);
    std::memcpy(ab.Data(), data, bytes);
    o.buf.reset();
  }
  return Napi::Float32Array::New(env, o.floats, ab, 0);
}

// ---------------------------------------------------------------- run worker
class RunWorker;

// Runs of one encoder go to the libuv pool one at a time (they would serialise on the encoder
// anyway): overlapping calls wait here, on the JS thread, instead of each blocking a libuv thread
// that file system and crypto work also need. A waiting call holds only its inputs; its outputs are
// allocated when it starts. Touched only on the JS thread.
struct RunQueue {
  std::deque<RunWorker*> waiting;
  bool busy = false;
  void submit(RunWorker* w);
  void done();  // the running call has settled its promise: start the next

 private:
  void start_next();
};

class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<Encoder> enc, std::shared_ptr<RunQueue> queue, bort::RunInputs in,
            std::vector<int32_t> ids, std::vector<int32_t> mask, std::vector<int32_t> types, std::vector<int32_t> positions,
            std::vector<Output> outs)
      : Napi::AsyncWorker(env, "bort.run"),
        deferred_(Napi::Promise::Deferred::New(env)),
        enc_(std::move(enc)),
        queue_(std::move(queue)),
        in_(in),
        ids_(std::move(ids)),
        mask_(std::move(mask)),
        types_(std::move(types)),
        positions_(std::move(positions)),
        outs_(std::move(outs)) {
    in_.ids = ids_.data();
    in_.mask = in.mask ? mask_.data() : nullptr;
    in_.types = in.types ? types_.data() : nullptr;
    in_.positions = in.positions ? positions_.data() : nullptr;
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  // On the JS thread, when the queue reaches this call: allocates the outputs and queues the work.
  // False (promise rejected, nothing queued: the caller deletes this worker) when the encoder was
  // closed meanwhile or an output cannot be allocated. Never throws.
  bool Start() {
    Napi::Env env = Env();
    try {
      if (enc_->closed()) {
        deferred_.Reject(Napi::Error::New(env, "this encoder is closed").Value());
        return false;
      }
      Instance* inst = env.GetInstanceData<Instance>();
      for (Output& o : outs_) {
        try {
          if (inst && inst->take_fault(Fault::Alloc) != Fault::None) throw std::bad_alloc();
          o.buf = OutBuf(inst->outputs->take(o.floats), PoolGive{inst->outputs});
        } catch (const std::bad_alloc&) {
          for (Output& x : outs_) x.buf.reset();
          deferred_.Reject(Napi::RangeError::New(env, std::string("output '") + o.name + "' of " +
                                                          std::to_string(o.floats * sizeof(float)) +
                                                          " bytes cannot be allocated (out of memory); run a smaller batch or shorter sequences")
                               .Value());
          return false;
        }
      }
      bort::RunOutputs& r = out_;
      for (Output& o : outs_) {
        const std::string n = o.name;
        float* p = o.buf.get();
        if (n == "hidden") r.hidden = p;
        else if (n == "pooled") r.pooled = p;
        else if (n == "mlm") r.mlm = p;
        else if (n == "cls") r.cls = p;
        else if (n == "tok") r.tok = p;
        else if (n == "layers") r.layers = p;
        else if (n == "attention") r.attn = p;
      }
      Queue();
      return true;
    } catch (const Napi::Error& e) {
      try {
        deferred_.Reject(e.Value());
      } catch (...) {
      }
    } catch (const std::exception& e) {
      try {
        deferred_.Reject(Napi::Error::New(env, e.what()).Value());
      } catch (...) {
      }
    }
    return false;
  }

  void Execute() override {
    try {
      enc_->run(in_, out_);
      skipped_padding_ = enc_->last_run_packed();  // read under the run's serialisation, before the next
    } catch (const bort::InputRangeError& e) {
      failure_ = {Failure::Range, e.what()};
    } catch (const bort::InputTypeError& e) {
      failure_ = {Failure::Type, e.what()};
    } catch (const std::bad_alloc&) {
      failure_ = {Failure::Range, "out of memory for the run's scratch buffers; run a smaller batch or shorter sequences"};
    } catch (const std::exception& e) {
      failure_ = {Failure::Plain, e.what()};
    }
  }

  void OnOK() override {
    ReleaseQueue release{queue_.get()};  // whatever happens below, the next call runs
    Napi::Env env = Env();
    try {
      if (failure_.kind != Failure::None) throw failure_.error(env);
      Instance* inst = env.GetInstanceData<Instance>();
      if (inst && inst->take_fault(Fault::Resolve) != Fault::None) throw Napi::Error::New(env, "injected fault while resolving a run");
      Napi::Object r = Napi::Object::New(env);
      for (Output& o : outs_) r.Set(o.name, to_js(env, o));
      r.Set("skippedPadding", Napi::Boolean::New(env, skipped_padding_));
      deferred_.Resolve(r);
    } catch (const Napi::Error& e) {
      Settle(e);
    } catch (const std::exception& e) {
      Settle(Napi::Error::New(env, e.what()));
    }
  }

  void OnError(const Napi::Error& e) override {
    ReleaseQueue release{queue_.get()};
    Settle(e);
  }

 private:
  struct ReleaseQueue {
    RunQueue* q;
    ~ReleaseQueue() { q->done(); }
  };

  void Settle(const Napi::Error& e) {
    for (Output& o : outs_) o.buf.reset();
    try {
      deferred_.Reject(e.Value());
    } catch (...) {
    }
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Encoder> enc_;
  std::shared_ptr<RunQueue> queue_;
  bort::RunInputs in_;
  std::vector<int32_t> ids_, mask_, types_, positions_;
  std::vector<Output> outs_;
  bort::RunOutputs out_;
  bool skipped_padding_ = false;
  Failure failure_;
};

void RunQueue::submit(RunWorker* w) {
  waiting.push_back(w);
  start_next();
}

void RunQueue::done() {
  busy = false;
  start_next();
}

void RunQueue::start_next() {
  while (!busy && !waiting.empty()) {
    RunWorker* w = waiting.front();
    waiting.pop_front();
    if (w->Start()) busy = true;
    else delete w;  // never queued: its promise is already rejected
  }
}

// ---------------------------------------------------------------- pack worker (createEncoderAsync)
class PackWorker : public Napi::AsyncWorker {
 public:
  PackWorker(Napi::Env env, bort::EncoderConfig cfg, std::unique_ptr<WeightTable> weights, const bort::Kernels* k)
      : Napi::AsyncWorker(env, "bort.pack"),
        deferred_(Napi::Promise::Deferred::New(env)),
        cfg_(std::move(cfg)),
        weights_(std::move(weights)),
        k_(k) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { enc_ = build_encoder(cfg_, *weights_, k_, &failure_); }

  void OnOK() override {
    Napi::Env env = Env();
    weights_.reset();  // JS may drop or reuse its arrays now
    try {
      if (!enc_) throw failure_.error(env);
      auto* holder = new std::shared_ptr<Encoder>(enc_);
      Napi::External<std::shared_ptr<Encoder>> ext =
          Napi::External<std::shared_ptr<Encoder>>::New(env, holder, [](Napi::Env, std::shared_ptr<Encoder>* h) { delete h; });
      ext.TypeTag(&kEncoderTag);
      deferred_.Resolve(env.GetInstanceData<Instance>()->encoderCtor.New({ext}));
    } catch (const Napi::Error& e) {
      if (enc_) enc_->close();
      try {
        deferred_.Reject(e.Value());
      } catch (...) {
      }
    }
  }

  void OnError(const Napi::Error& e) override {
    weights_.reset();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  bort::EncoderConfig cfg_;
  std::unique_ptr<WeightTable> weights_;
  const bort::Kernels* k_;
  std::shared_ptr<Encoder> enc_;
  Failure failure_;
};

// ---------------------------------------------------------------- NativeEncoder
class NativeEncoder : public Napi::ObjectWrap<NativeEncoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEncoder",
                       {InstanceMethod<&NativeEncoder::Run>("run"), InstanceMethod<&NativeEncoder::Close>("close"),
                        InstanceMethod<&NativeEncoder::SetThreads>("setThreads"),
                        InstanceMethod<&NativeEncoder::RecordInputMaxima>("recordInputMaxima"),
                        InstanceMethod<&NativeEncoder::TakeInputMaxima>("takeInputMaxima"),
                        InstanceAccessor<&NativeEncoder::Threads>("threads"), InstanceAccessor<&NativeEncoder::Isa>("isa"),
                        InstanceAccessor<&NativeEncoder::PackedBytes>("packedBytes")});
  }

  // (config, weights): packs here; (External from createEncoderAsync): takes the packed encoder.
  explicit NativeEncoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEncoder>(info) {
    Napi::Env env = info.Env();
    if (info.Length() == 1 && info[0].IsExternal()) {
      Napi::External<std::shared_ptr<Encoder>> ext = info[0].As<Napi::External<std::shared_ptr<Encoder>>>();
      if (!ext.CheckTypeTag(&kEncoderTag)) throw Napi::TypeError::New(env, "NativeEncoder: not an encoder handle");
      enc_ = *ext.Data();
      return;
    }
    bort::EncoderConfig cfg = parse_config(env, info[0]);
    WeightTable w(env, info[1]);
    Failure f;
    enc_ = build_encoder(cfg, w, kernels_or_throw(env), &f);
    if (!enc_) throw f.error(env);
  }

 private:
  static const int32_t* int32_input(Napi::Env env, Napi::Object o, const char* key, bool required, size_t n,
                                    std::vector<int32_t>* copy) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) {
      if (required) throw Napi::TypeError::New(env, std::string("inputs.") + key + " is required (an Int32Array)");
      return nullptr;
    }
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, std::string("inputs.") + key + " must be an Int32Array or null");
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    if (a.ElementLength() != n)
      throw Napi::TypeError::New(env, std::string("inputs.") + key + " has " + std::to_string(a.ElementLength()) +
                                          " values, expected batch*seq = " + std::to_string(n));
    copy->assign(a.Data(), a.Data() + n);
    return copy->data();
  }

  static int dim(Napi::Env env, Napi::Object o, const char* key) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("inputs.") + key + " must be a positive integer");
    if (!is_int_in(v.As<Napi::Number>().DoubleValue(), 1, 2147483647.0))
      throw Napi::TypeError::New(env, std::string("inputs.") + key + " must be a positive integer, got " + js_text(v));
    return (int)v.As<Napi::Number>().DoubleValue();
  }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto reject = [&](const Napi::Error& e) {
      Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
      d.Reject(e.Value());
      return d.Promise();
    };
    try {
      if (!enc_ || enc_->closed()) return reject(Napi::Error::New(env, "this encoder is closed"));
      if (!info[0].IsObject()) return reject(Napi::TypeError::New(env, "run(inputs): inputs must be { ids, mask, types, positions, batch, seq }"));
      Napi::Object o = info[0].As<Napi::Object>();
      const int batch = dim(env, o, "batch"), seq = dim(env, o, "seq");
      if ((double)batch * seq > 2147483647.0)
        throw Napi::RangeError::New(env, "batch*seq = " + std::to_string((double)batch * seq) + " is too large (at most 2^31 - 1 tokens per run)");
      const size_t n = (size_t)batch * seq;
      std::string too_large;
      Napi::Value iv = o.Get("intermediates");
      if (!iv.IsUndefined() && !iv.IsNull() && !iv.IsBoolean())
        throw Napi::TypeError::New(env, "run(inputs): inputs.intermediates must be a boolean");
      const bool intermediates = iv.IsBoolean() && iv.As<Napi::Boolean>().Value();
      std::vector<Output> outs = output_plan(enc_->config(), batch, seq, intermediates, &too_large);
      if (!too_large.empty()) throw Napi::RangeError::New(env, too_large);
      std::vector<int32_t> ids, mask, types, positions;
      bort::RunInputs in;
      in.batch = batch;
      in.seq = seq;
      in.ids = int32_input(env, o, "ids", true, n, &ids);
      in.mask = int32_input(env, o, "mask", false, n, &mask);
      in.types = int32_input(env, o, "types", false, n, &types);
      in.positions = int32_input(env, o, "positions", false, n, &positions);
      try {
        enc_->validate(in);
      } catch (const bort::InputRangeError& e) {
        throw Napi::RangeError::New(env, e.what());
      } catch (const bort::InputTypeError& e) {
        throw Napi::TypeError::New(env, e.what());
      }
      RunWorker* w = new RunWorker(env, enc_, queue_, in, std::move(ids), std::move(mask), std::move(types), std::move(positions), std::move(outs));
      Napi::Promise p = w->Promise();
      queue_->submit(w);
      return p;
    } catch (const Napi::Error& e) {
      return reject(e);
    } catch (const std::bad_alloc&) {
      return reject(Napi::RangeError::New(env, "out of memory copying the inputs"));
    } catch (const std::exception& e) {
      return reject(Napi::Error::New(env, e.what()));
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (enc_) enc_->close();
    return info.Env().Undefined();
  }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int n = threads_from(env, info[0], "setThreads(n): n");
    if (!enc_ || enc_->closed()) throw Napi::Error::New(env, "this encoder is closed");
    try {
      enc_->set_threads(n);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return env.Undefined();
  }

  // Calibration (Encoder::record_input_maxima): call between runs (waits for a run in flight).
  Napi::Value RecordInputMaxima(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "recordInputMaxima(on): on must be a boolean");
    if (!enc_ || enc_->closed()) throw Napi::Error::New(env, "this encoder is closed");
    enc_->record_input_maxima(info[0].As<Napi::Boolean>().Value());
    return env.Undefined();
  }

  // One Float32Array of row maxima per slot (Encoder::take_input_maxima).
  Napi::Value TakeInputMaxima(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!enc_ || enc_->closed()) throw Napi::Error::New(env, "this encoder is closed");
    std::vector<std::vector<float>> m = enc_->take_input_maxima();
    Napi::Array out = Napi::Array::New(env, m.size());
    for (size_t i = 0; i < m.size(); ++i) {
      Napi::Float32Array a = Napi::Float32Array::New(env, m[i].size());
      if (!m[i].empty()) std::memcpy(a.Data(), m[i].data(), m[i].size() * sizeof(float));
      out.Set((uint32_t)i, a);
    }
    return out;
  }

  Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), enc_ ? enc_->threads() : 0); }
  Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), enc_->kernels().name); }
  Napi::Value PackedBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), enc_ ? (double)enc_->packed_bytes() : 0);
  }

  std::shared_ptr<Encoder> enc_;
  std::shared_ptr<RunQueue> queue_ = std::make_shared<RunQueue>();
};

Napi::Value CreateEncoder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance* inst = env.GetInstanceData<Instance>();
  return inst->encoderCtor.New({info[0], info[1]});
}

// Validates the configuration and takes the weights now (errors reject the promise), packs on a libuv
// thread.
Napi::Value CreateEncoderAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    bort::EncoderConfig cfg = parse_config(env, info[0]);
    auto w = std::make_unique<WeightTable>(env, info[1]);
    PackWorker* pw = new PackWorker(env, std::move(cfg), std::move(w), kernels_or_throw(env));
    Napi::Promise p = pw->Promise();
    pw->Queue();
    return p;
  } catch (const Napi::Error& e) {
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
}

Napi::Value IsaName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), kernels_or_throw(info.Env())->name);
}

Napi::Value Isas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  uint32_t i = 0;
  for (bort::Isa isa : {bort::Isa::Avx512, bort::Isa::Avx2, bort::Isa::Neon, bort::Isa::Scalar})
    if (bort::isa_available(isa)) a.Set(i++, Napi::String::New(env, bort::isa_name(isa)));
  return a;
}

Napi::Value TestFault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string what = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  Instance* inst = env.GetInstanceData<Instance>();
  if (what == "alloc") inst->fault = Fault::Alloc;
  else if (what == "resolve") inst->fault = Fault::Resolve;
  else if (what == "none") inst->fault = Fault::None;
  else throw Napi::TypeError::New(env, "_testFault(kind): kind must be 'alloc', 'resolve' or 'none'");
  return env.Undefined();
}

// _outputPool() -> { slabsMapped, slabsReused, spare, live }: the output slabs (output_pool.h; tests, benches).
Napi::Value OutputPoolStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance* inst = env.GetInstanceData<Instance>();
  Napi::Object r = Napi::Object::New(env);
  const bort::OutputPool::Stats st = inst->outputs->stats();
  r.Set("slabsMapped", Napi::Number::New(env, (double)st.slabs_mapped));
  r.Set("slabsReused", Napi::Number::New(env, (double)st.slabs_reused));
  r.Set("spare", Napi::Number::New(env, (double)st.spare));
  r.Set("live", Napi::Number::New(env, (double)st.live));
  return r;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeEncoder::Define(env);
  Instance* inst = new Instance();
  inst->encoderCtor = Napi::Persistent(ctor);
  env.SetInstanceData<Instance>(inst);
  exports.Set("NativeEncoder", ctor);
  exports.Set("createEncoder", Napi::Function::New(env, CreateEncoder, "createEncoder"));
  exports.Set("createEncoderAsync", Napi::Function::New(env, CreateEncoderAsync, "createEncoderAsync"));
  exports.Set("isa", Napi::Function::New(env, IsaName, "isa"));
  exports.Set("isas", Napi::Function::New(env, Isas, "isas"));
  exports.Set("maxThreads", Napi::Number::New(env, bort::kMaxThreads));
  exports.Set("_testFault", Napi::Function::New(env, TestFault, "_testFault"));
  exports.Set("_outputPool", Napi::Function::New(env, OutputPoolStats, "_outputPool"));
  bort_train::init_binding(env, exports, parse_config, kernels_or_throw);
  return exports;
}

}  // namespace

NODE_API_MODULE(bort_native, Init)
