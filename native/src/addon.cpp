// N-API binding (node-addon-api; NAPI_CPP_EXCEPTIONS + NODE_ADDON_API_CPP_EXCEPTIONS_ALL: any C++ exception
// that reaches the boundary becomes a JS Error).
//
//   createEncoder(config, weights) -> NativeEncoder   (weights packed/copied; JS may drop its arrays)
//   handle.run({ ids, mask, types, batch, seq }) -> Promise<{ hidden, pooled?, mlm?, cls? }>
//   handle.close(), handle.setThreads(n), handle.threads
//   isa() -> "avx512" | "avx2" | "neon" | "scalar"   (BORT_ISA forces one)
//   isas() -> the ISAs this CPU and build can run
#include <napi.h>

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "encoder.h"

namespace {

using bort::Encoder;

const bort::Kernels* kernels_or_throw(Napi::Env env) {
  const char* err = nullptr;
  const bort::Kernels* k = bort::active_kernels(&err);
  if (!k) throw Napi::Error::New(env, err ? err : "no kernel table available");
  return k;
}

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
  if (d != (double)(int64_t)d || d < minv || d > 2147483647.0)
    throw Napi::TypeError::New(o.Env(), std::string("config.") + key + " must be an integer >= " + std::to_string(minv) +
                                            ", got " + std::to_string(d));
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
  cfg.scoreScale = (float)get_number(c, "scoreScale", true, 0);
  cfg.maskValue = (float)get_number(c, "maskValue", true, 0);
  cfg.embLnEps = (float)get_number(c, "embLnEps", true, 0);
  Napi::Value eps = c.Get("lnEps");
  if (!eps.IsArray()) throw Napi::TypeError::New(env, "config.lnEps must be an array of 2 numbers per layer");
  Napi::Array ea = eps.As<Napi::Array>();
  for (uint32_t i = 0; i < ea.Length(); ++i) {
    Napi::Value e = ea.Get(i);
    if (!e.IsNumber()) throw Napi::TypeError::New(env, "config.lnEps[" + std::to_string(i) + "] must be a number");
    cfg.lnEps.push_back((float)e.As<Napi::Number>().DoubleValue());
  }
  Napi::Value pooler = c.Get("pooler");
  cfg.pooler = pooler.IsBoolean() ? pooler.As<Napi::Boolean>().Value() : false;
  Napi::Value mlm = c.Get("mlm");
  if (mlm.IsObject()) {
    cfg.mlm = true;
    cfg.mlmLnEps = (float)get_number(mlm.As<Napi::Object>(), "lnEps", true, 0);
  } else if (!mlm.IsUndefined() && !mlm.IsNull()) {
    throw Napi::TypeError::New(env, "config.mlm must be null or { lnEps }");
  }
  Napi::Value cls = c.Get("classifier");
  if (cls.IsObject()) {
    cfg.classifierLabels = get_int(cls.As<Napi::Object>(), "labels", true, 0, 1);
  } else if (!cls.IsUndefined() && !cls.IsNull()) {
    throw Napi::TypeError::New(env, "config.classifier must be null or { labels }");
  }
  unsigned hc = std::thread::hardware_concurrency();
  cfg.threads = get_int(c, "threads", false, hc ? (int)hc : 1, 1);
  return cfg;
}

struct Instance {
  Napi::FunctionReference encoderCtor;
};

// ---------------------------------------------------------------- run worker
class RunWorker;

// Runs of one encoder go to the libuv pool one at a time (they would serialise on the encoder
// anyway): overlapping calls wait here, on the JS thread, instead of each blocking a libuv thread
// that file system and crypto work also need. Touched only on the JS thread.
struct RunQueue {
  std::deque<RunWorker*> waiting;
  bool busy = false;
  void submit(RunWorker* w);
  void done();
};

class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<Encoder> enc, std::shared_ptr<RunQueue> queue, bort::RunInputs in,
            std::vector<int32_t> ids, std::vector<int32_t> mask, std::vector<int32_t> types)
      : Napi::AsyncWorker(env, "bort.run"),
        deferred_(Napi::Promise::Deferred::New(env)),
        enc_(std::move(enc)),
        queue_(std::move(queue)),
        in_(in),
        ids_(std::move(ids)),
        mask_(std::move(mask)),
        types_(std::move(types)) {
    in_.ids = ids_.data();
    in_.mask = in.mask ? mask_.data() : nullptr;
    in_.types = in.types ? types_.data() : nullptr;
    const bort::EncoderConfig& c = enc_->config();
    const size_t B = in.batch, S = in.seq, H = c.hidden;
    out_.hidden = alloc(env, "hidden", B * S * H);
    if (c.pooler) out_.pooled = alloc(env, "pooled", B * H);
    if (c.mlm) out_.mlm = alloc(env, "mlm", B * S * (size_t)c.vocab);
    if (c.classifierLabels) out_.cls = alloc(env, "cls", B * (size_t)c.classifierLabels);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      enc_->run(in_, out_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    for (auto& o : outs_) r.Set(o.first, o.second.Value());
    outs_.clear();
    deferred_.Resolve(r);
    queue_->done();
  }

  void OnError(const Napi::Error& e) override {
    outs_.clear();
    deferred_.Reject(e.Value());
    queue_->done();
  }

 private:
  float* alloc(Napi::Env env, const char* name, size_t n) {
    Napi::Float32Array a = Napi::Float32Array::New(env, n);
    outs_.emplace_back(name, Napi::Persistent(static_cast<Napi::Object>(a)));
    return a.Data();
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Encoder> enc_;
  std::shared_ptr<RunQueue> queue_;
  bort::RunInputs in_;
  std::vector<int32_t> ids_, mask_, types_;
  bort::RunOutputs out_;
  std::vector<std::pair<std::string, Napi::ObjectReference>> outs_;
};

void RunQueue::submit(RunWorker* w) {
  if (busy) {
    waiting.push_back(w);
  } else {
    busy = true;
    w->Queue();
  }
}

void RunQueue::done() {
  busy = false;
  if (!waiting.empty()) {
    RunWorker* w = waiting.front();
    waiting.pop_front();
    busy = true;
    w->Queue();
  }
}

// ---------------------------------------------------------------- NativeEncoder
class NativeEncoder : public Napi::ObjectWrap<NativeEncoder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEncoder",
                       {InstanceMethod<&NativeEncoder::Run>("run"), InstanceMethod<&NativeEncoder::Close>("close"),
                        InstanceMethod<&NativeEncoder::SetThreads>("setThreads"),
                        InstanceAccessor<&NativeEncoder::Threads>("threads"), InstanceAccessor<&NativeEncoder::Isa>("isa"),
                        InstanceAccessor<&NativeEncoder::PackedBytes>("packedBytes")});
  }

  explicit NativeEncoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEncoder>(info) {
    Napi::Env env = info.Env();
    bort::EncoderConfig cfg = parse_config(env, info[0]);
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "createEncoder(config, weights): weights must be an object of Float32Array");
    Napi::Object w = info[1].As<Napi::Object>();
    const bort::Kernels* k = kernels_or_throw(env);
    bort::WeightLookup lookup = [&](const std::string& name, size_t* len) -> const float* {
      Napi::Value v = w.Get(name);
      if (v.IsUndefined() || v.IsNull()) return nullptr;
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw Napi::TypeError::New(env, "weight '" + name + "' must be a Float32Array");
      Napi::Float32Array a = v.As<Napi::Float32Array>();
      *len = a.ElementLength();
      return a.Data();
    };
    try {
      enc_ = std::make_shared<Encoder>(cfg, lookup, k);
    } catch (const bort::ConfigError& e) {
      throw Napi::TypeError::New(env, e.what());
    } catch (const std::bad_alloc&) {
      throw Napi::RangeError::New(env, "out of memory while packing the weights");
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("createEncoder failed: ") + e.what());
    }
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
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 1 && d <= 2147483647.0) || d != (double)(int64_t)d)
      throw Napi::TypeError::New(env, std::string("inputs.") + key + " must be a positive integer, got " + v.ToString().Utf8Value());
    return (int)d;
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
      if (!info[0].IsObject()) return reject(Napi::TypeError::New(env, "run(inputs): inputs must be { ids, mask, types, batch, seq }"));
      Napi::Object o = info[0].As<Napi::Object>();
      const int batch = dim(env, o, "batch"), seq = dim(env, o, "seq");
      const double total = (double)batch * seq;
      if (total > 2147483647.0) throw Napi::RangeError::New(env, "batch*seq is too large");
      const size_t n = (size_t)batch * seq;
      std::vector<int32_t> ids, mask, types;
      bort::RunInputs in;
      in.batch = batch;
      in.seq = seq;
      in.ids = int32_input(env, o, "ids", true, n, &ids);
      in.mask = int32_input(env, o, "mask", false, n, &mask);
      in.types = int32_input(env, o, "types", false, n, &types);
      try {
        enc_->validate(in);
      } catch (const bort::InputRangeError& e) {
        throw Napi::RangeError::New(env, e.what());
      } catch (const bort::InputTypeError& e) {
        throw Napi::TypeError::New(env, e.what());
      }
      RunWorker* w = new RunWorker(env, enc_, queue_, in, std::move(ids), std::move(mask), std::move(types));
      Napi::Promise p = w->Promise();
      queue_->submit(w);
      return p;
    } catch (const Napi::Error& e) {
      return reject(e);
    } catch (const std::bad_alloc&) {
      return reject(Napi::RangeError::New(env, "out of memory allocating the outputs"));
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
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "setThreads(n): n must be a positive integer");
    double d = info[0].As<Napi::Number>().DoubleValue();
    if (!(d >= 1 && d <= 1024) || d != (double)(int)d) throw Napi::RangeError::New(env, "setThreads(n): n must be an integer in [1, 1024]");
    if (!enc_ || enc_->closed()) throw Napi::Error::New(env, "this encoder is closed");
    try {
      enc_->set_threads((int)d);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return env.Undefined();
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeEncoder::Define(env);
  Instance* inst = new Instance();
  inst->encoderCtor = Napi::Persistent(ctor);
  env.SetInstanceData<Instance>(inst);
  exports.Set("NativeEncoder", ctor);
  exports.Set("createEncoder", Napi::Function::New(env, CreateEncoder, "createEncoder"));
  exports.Set("isa", Napi::Function::New(env, IsaName, "isa"));
  exports.Set("isas", Napi::Function::New(env, Isas, "isas"));
  return exports;
}

}  // namespace

NODE_API_MODULE(bort_native, Init)
