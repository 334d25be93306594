// N-API binding of the training engine (compiled into the addon beside addon.cpp).
//
//   new NativeTrainer(config, weights, options)  config and weights as createEncoder takes them
//       (config.mlm required; decoder_w only when options.tiedDecoder is false); the weights are
//       copied at once. options: { lr, beta1, beta2, eps, weightDecay, clipNorm, warmupSteps,
//       totalSteps, tiedDecoder, headLr, threads, sharedFrozenUntil, predecessors, hiddenTarget } (all optional; headLr:
//       the classification head's peak). predecessors: { layers, heads, headSize, intermediate, scoreScale,
//       lnEps (2 per layer) }: frozen layers appended to the stack, their weights in `weights` as pred.q_w.0, ...
//   t.step(batch) -> Promise<{ loss, mlm, kl, hidden, attention, gradNorm, lr, step }>   forward, backward, AdamW (libuv thread)
//   t.gradients(batch) -> Promise<same>                              forward and backward only
//       batch: { ids, types?, mask?, batch, seq, positions, labels?, teacher?, mlmWeight?, klWeight?, temperature?,
//                route? (Int32Array of stack layers: 0..layers-1 trainable, layers + j predecessor j),
//                match?, teacherHidden?, teacherAttention?, hiddenWeight?, attentionWeight? (intermediate
//                terms, trainer.h: match Int32Array of route positions; teacherHidden Float32Array
//                [match, batch*seq, hiddenTarget or hidden]; teacherAttention Float32Array [match, batch, seq, seq]) }
//       or, for a classifier (config.classifier): { ids, types?, mask?, batch, seq, classes?, classTeacher?,
//       ceWeight?, klWeight?, temperature? } (classes: Int32Array [batch]; classTeacher: Float32Array [batch, labels])
//       (Int32Array / Float32Array; copied when the call is made)
//   t.weightNames(), t.predecessorNames(), t.weight(name) -> Float32Array copy, t.grad(name),
//   t.setWeight(name, Float32Array)
//   t.state() -> { step, params, m, v }, t.setState(state)   resumable optimizer state
//   t.savedBytes(seq) -> { perToken, perPosition }, t.isa, t.close()
// One call at a time: a call while a step is in flight is an Error that says to await it.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "trainer.h"

namespace bort_train {

using ParseConfig = bort::EncoderConfig (*)(Napi::Env, Napi::Value);
using KernelsOrThrow = const bort::Kernels* (*)(Napi::Env);

namespace {

ParseConfig g_parse = nullptr;
KernelsOrThrow g_kernels = nullptr;

double number_of(Napi::Object o, const char* obj, const char* key, double dflt, double lo, double hi, bool integer) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(obj) + "." + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || (integer && std::trunc(d) != d))
    throw Napi::RangeError::New(o.Env(), std::string(obj) + "." + key + " must be " + (integer ? "an integer" : "a number") +
                                             " in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                             v.ToString().Utf8Value());
  return d;
}

template <class T, napi_typedarray_type KIND>
std::vector<T> array_of(Napi::Object o, const char* key, bool required, size_t want, const char* kind) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw Napi::TypeError::New(o.Env(), std::string("batch.") + key + " is required (" + kind + ")");
    return {};
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != KIND)
    throw Napi::TypeError::New(o.Env(), std::string("batch.") + key + " must be an " + kind);
  Napi::TypedArrayOf<T> a = v.As<Napi::TypedArrayOf<T>>();
  if (want && a.ElementLength() != want)
    throw Napi::TypeError::New(o.Env(), std::string("batch.") + key + " has " + std::to_string(a.ElementLength()) +
                                            " values, expected " + std::to_string(want));
  return std::vector<T>(a.Data(), a.Data() + a.ElementLength());
}

// A batch copied out of JS, so the caller may reuse its arrays at once.
struct BatchCopy {
  std::vector<int32_t> ids, types, mask, positions, labels, classes, route, match;
  std::vector<float> teacher, classTeacher, teacherHidden, teacherAttention;
  bort::TrainBatch view;

  // hiddenTarget: the size of each teacherHidden row (the trainer's hiddenTarget, else its hidden size)
  BatchCopy(Napi::Env env, Napi::Value bv, int vocab, int classLabels, int hiddenTarget) {
    if (!bv.IsObject()) throw Napi::TypeError::New(env, "step(batch): batch must be an object");
    Napi::Object b = bv.As<Napi::Object>();
    const int B = (int)number_of(b, "batch", "batch", 0, 1, 1 << 20, true);
    const int S = (int)number_of(b, "batch", "seq", 0, 1, 1 << 20, true);
    if (!B || !S) throw Napi::TypeError::New(env, "batch.batch and batch.seq are required positive integers");
    const size_t M = (size_t)B * S;
    ids = array_of<int32_t, napi_int32_array>(b, "ids", true, M, "Int32Array of batch*seq token ids");
    types = array_of<int32_t, napi_int32_array>(b, "types", false, M, "Int32Array of batch*seq token types");
    mask = array_of<int32_t, napi_int32_array>(b, "mask", false, M, "Int32Array of batch*seq 0/1");
    positions = array_of<int32_t, napi_int32_array>(b, "positions", classLabels == 0, 0, "Int32Array of token indices");
    if (classLabels > 0) {
      classes = array_of<int32_t, napi_int32_array>(b, "classes", false, B, "Int32Array of one class per sequence");
      classTeacher = array_of<float, napi_float32_array>(b, "classTeacher", false, (size_t)B * classLabels,
                                                         "Float32Array of batch*labels teacher logits");
      view.classes = classes.empty() ? nullptr : classes.data();
      view.classTeacher = classTeacher.empty() ? nullptr : classTeacher.data();
      view.ceWeight = (float)number_of(b, "batch", "ceWeight", view.ceWeight, 0, 1e6, false);
    }
    const size_t P = positions.size();
    labels = array_of<int32_t, napi_int32_array>(b, "labels", false, P, "Int32Array of one label per position");
    teacher = array_of<float, napi_float32_array>(b, "teacher", false, P * (size_t)vocab, "Float32Array of positions*vocab logits");
    view.ids = ids.data();
    view.types = types.empty() ? nullptr : types.data();
    view.mask = mask.empty() ? nullptr : mask.data();
    view.batch = B;
    view.seq = S;
    view.positions = positions.data();
    view.npos = (int)P;
    view.labels = labels.empty() ? nullptr : labels.data();
    view.teacher = teacher.empty() ? nullptr : teacher.data();
    view.mlmWeight = (float)number_of(b, "batch", "mlmWeight", view.mlmWeight, 0, 1e6, false);
    view.klWeight = (float)number_of(b, "batch", "klWeight", view.klWeight, 0, 1e6, false);
    view.temperature = (float)number_of(b, "batch", "temperature", view.temperature, 1e-3, 1e3, false);
    route = array_of<int32_t, napi_int32_array>(b, "route", false, 0, "Int32Array of stack layer indices");
    Napi::Value rv = b.Get("route");
    if (!rv.IsUndefined() && !rv.IsNull()) {
      if (route.empty()) throw Napi::TypeError::New(env, "batch.route must name at least one layer");
      view.route = route.data();
      view.nroute = (int)route.size();
    }
    match = array_of<int32_t, napi_int32_array>(b, "match", false, 0, "Int32Array of route positions");
    const size_t nm = match.size();
    teacherHidden = array_of<float, napi_float32_array>(b, "teacherHidden", false, nm * M * (size_t)hiddenTarget,
                                                        "Float32Array of match*batch*seq*hidden teacher layer outputs");
    teacherAttention = array_of<float, napi_float32_array>(b, "teacherAttention", false, nm * M * (size_t)S,
                                                           "Float32Array of match*batch*seq*seq attention probabilities");
    if (nm == 0 && (!teacherHidden.empty() || !teacherAttention.empty()))
      throw Napi::TypeError::New(env, "batch.teacherHidden and batch.teacherAttention need batch.match (the route positions they pair with)");
    view.match = match.empty() ? nullptr : match.data();
    view.nmatch = (int)nm;
    view.teacherHidden = teacherHidden.empty() ? nullptr : teacherHidden.data();
    view.teacherAttention = teacherAttention.empty() ? nullptr : teacherAttention.data();
    view.hiddenWeight = (float)number_of(b, "batch", "hiddenWeight", 0, 0, 1e6, false);
    view.attentionWeight = (float)number_of(b, "batch", "attentionWeight", 0, 0, 1e6, false);
  }
};

class NativeTrainer;

class StepWorker : public Napi::AsyncWorker {
 public:
  StepWorker(Napi::Env env, std::shared_ptr<bort::Trainer> t, std::unique_ptr<BatchCopy> b, bool update, bool* busy,
             Napi::Object owner)
      : Napi::AsyncWorker(env, "bort.trainStep"),
        deferred_(Napi::Promise::Deferred::New(env)),
        t_(std::move(t)),
        b_(std::move(b)),
        update_(update),
        busy_(busy),
        owner_(Napi::Persistent(owner)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      r_ = update_ ? t_->step(b_->view) : t_->compute_gradients(b_->view);
      return;
    } catch (const bort::InputRangeError& e) {
      kind_ = 2;
      msg_ = e.what();
    } catch (const bort::InputTypeError& e) {
      kind_ = 1;
      msg_ = e.what();
    } catch (const std::bad_alloc&) {
      kind_ = 2;
      msg_ = "out of memory for the training step's activations; use a smaller batch or shorter sequences";
    } catch (const std::exception& e) {
      kind_ = 3;
      msg_ = e.what();
    }
  }

  void OnOK() override {
    *busy_ = false;
    Napi::Env env = Env();
    if (kind_) {
      Napi::Error e = kind_ == 1 ? Napi::TypeError::New(env, msg_) : kind_ == 2 ? Napi::RangeError::New(env, msg_) : Napi::Error::New(env, msg_);
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", r_.loss);
    o.Set("mlm", r_.mlm);
    o.Set("kl", r_.kl);
    o.Set("hidden", r_.hidden);
    o.Set("attention", r_.attention);
    o.Set("gradNorm", r_.gradNorm);
    o.Set("lr", r_.lr);
    o.Set("step", (double)r_.step);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    *busy_ = false;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<bort::Trainer> t_;
  std::unique_ptr<BatchCopy> b_;
  bool update_;
  bool* busy_;
  Napi::ObjectReference owner_;  // keeps the wrapper (and busy_) alive until the step settles
  bort::StepResult r_;
  int kind_ = 0;
  std::string msg_;
};

class NativeTrainer : public Napi::ObjectWrap<NativeTrainer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeTrainer",
                       {InstanceMethod<&NativeTrainer::Step>("step"), InstanceMethod<&NativeTrainer::Gradients>("gradients"),
                        InstanceMethod<&NativeTrainer::WeightNames>("weightNames"),
                        InstanceMethod<&NativeTrainer::PredecessorNames>("predecessorNames"),
                        InstanceMethod<&NativeTrainer::Weight>("weight"), InstanceMethod<&NativeTrainer::Grad>("grad"),
                        InstanceMethod<&NativeTrainer::SetWeight>("setWeight"), InstanceMethod<&NativeTrainer::State>("state"),
                        InstanceMethod<&NativeTrainer::SetState>("setState"),
                        InstanceMethod<&NativeTrainer::SavedBytes>("savedBytes"),
                        InstanceMethod<&NativeTrainer::Close>("close"), InstanceAccessor<&NativeTrainer::Isa>("isa"),
                        InstanceAccessor<&NativeTrainer::Steps>("steps")});
  }

  explicit NativeTrainer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTrainer>(info) {
    Napi::Env env = info.Env();
    bort::EncoderConfig cfg = g_parse(env, info[0]);
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "NativeTrainer(config, weights, options): weights must be an object of Float32Array");
    Napi::Object w = info[1].As<Napi::Object>();
    bort::TrainOptions opt;
    std::vector<bort::LayerShape> preds;
    if (!info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsObject()) throw Napi::TypeError::New(env, "NativeTrainer(config, weights, options): options must be an object");
      Napi::Object o = info[2].As<Napi::Object>();
      opt.lr = (float)number_of(o, "options", "lr", opt.lr, 0, 10, false);
      opt.beta1 = (float)number_of(o, "options", "beta1", opt.beta1, 0, 0.999999, false);
      opt.beta2 = (float)number_of(o, "options", "beta2", opt.beta2, 0, 0.999999, false);
      opt.eps = (float)number_of(o, "options", "eps", opt.eps, 1e-30, 1, false);
      opt.weightDecay = (float)number_of(o, "options", "weightDecay", opt.weightDecay, 0, 10, false);
      opt.clipNorm = (float)number_of(o, "options", "clipNorm", opt.clipNorm, 0, 1e30, false);
      opt.headLr = (float)number_of(o, "options", "headLr", opt.headLr, -1, 10, false);
      opt.totalSteps = (int)number_of(o, "options", "totalSteps", opt.totalSteps, 1, 2147483647.0, true);
      opt.warmupSteps = (int)number_of(o, "options", "warmupSteps", opt.warmupSteps, 0, opt.totalSteps, true);
      Napi::Value tied = o.Get("tiedDecoder");
      if (!tied.IsUndefined() && !tied.IsNull()) {
        if (!tied.IsBoolean()) throw Napi::TypeError::New(env, "options.tiedDecoder must be a boolean");
        opt.tiedDecoder = tied.As<Napi::Boolean>().Value();
      }
      opt.sharedFrozenUntil = (int64_t)number_of(o, "options", "sharedFrozenUntil", 0, 0, 2147483647.0, true);
      opt.hiddenTarget = (int)number_of(o, "options", "hiddenTarget", 0, 0, 1 << 20, true);
      Napi::Value pv = o.Get("predecessors");
      if (!pv.IsUndefined() && !pv.IsNull()) {
        if (!pv.IsObject()) throw Napi::TypeError::New(env, "options.predecessors must be an object");
        Napi::Object po = pv.As<Napi::Object>();
        const int n = (int)number_of(po, "predecessors", "layers", 0, 1, 4096, true);
        bort::LayerShape sh;
        sh.heads = (int)number_of(po, "predecessors", "heads", 0, 1, 1 << 16, true);
        sh.headSize = (int)number_of(po, "predecessors", "headSize", 0, 1, 1 << 16, true);
        sh.intermediate = (int)number_of(po, "predecessors", "intermediate", 0, 1, 1 << 24, true);
        sh.scoreScale = (float)number_of(po, "predecessors", "scoreScale", 0, 1e-30, 1e30, false);
        if (!n || !sh.heads || !sh.headSize || !sh.intermediate || !(sh.scoreScale > 0))
          throw Napi::TypeError::New(env, "options.predecessors needs layers, heads, headSize, intermediate and scoreScale");
        Napi::Value ev = po.Get("lnEps");
        if (!ev.IsArray() || ev.As<Napi::Array>().Length() != (uint32_t)(2 * n))
          throw Napi::TypeError::New(env, "options.predecessors.lnEps must be an array of 2 numbers per layer");
        Napi::Array eps = ev.As<Napi::Array>();
        for (int j = 0; j < n; ++j) {
          Napi::Value e1 = eps.Get((uint32_t)(2 * j)), e2 = eps.Get((uint32_t)(2 * j + 1));
          if (!e1.IsNumber() || !e2.IsNumber()) throw Napi::TypeError::New(env, "options.predecessors.lnEps must hold numbers");
          sh.lnEps1 = (float)e1.As<Napi::Number>().DoubleValue();
          sh.lnEps2 = (float)e2.As<Napi::Number>().DoubleValue();
          preds.push_back(sh);
        }
      }
    }
    auto lookup = [&](const std::string& name, size_t* len) -> const float* {
      Napi::Value v = w.Get(name);
      if (v.IsUndefined() || v.IsNull()) return nullptr;
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw bort::ConfigError("weight '" + name + "' must be a Float32Array");
      Napi::Float32Array a = v.As<Napi::Float32Array>();
      *len = a.ElementLength();
      return a.Data();
    };
    try {
      t_ = std::make_shared<bort::Trainer>(cfg, lookup, g_kernels(env), opt, preds);
    } catch (const bort::ConfigError& e) {
      throw Napi::TypeError::New(env, e.what());
    } catch (const std::bad_alloc&) {
      throw Napi::RangeError::New(env, "out of memory for the trainer's weights and optimizer state");
    }
  }

 private:
  bort::Trainer& live(Napi::Env env) {
    if (!t_) throw Napi::Error::New(env, "this trainer is closed");
    if (busy_) throw Napi::Error::New(env, "a training step is in flight on this trainer; await it first");
    return *t_;
  }

  Napi::Value Run(const Napi::CallbackInfo& info, bool update) {
    Napi::Env env = info.Env();
    try {
      bort::Trainer& t = live(env);
      const int ht = t.options().hiddenTarget > 0 ? t.options().hiddenTarget : t.config().hidden;
      auto b = std::make_unique<BatchCopy>(env, info[0], t.config().vocab, t.classifier() ? t.config().classifierLabels : 0, ht);
      StepWorker* w = new StepWorker(env, t_, std::move(b), update, &busy_, Value());
      Napi::Promise p = w->Promise();
      busy_ = true;
      w->Queue();
      return p;
    } catch (const Napi::Error& e) {
      Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
      d.Reject(e.Value());
      return d.Promise();
    }
  }
  Napi::Value Step(const Napi::CallbackInfo& info) { return Run(info, true); }
  Napi::Value Gradients(const Napi::CallbackInfo& info) { return Run(info, false); }

  Napi::Value WeightNames(const Napi::CallbackInfo& info) {
    bort::Trainer& t = live(info.Env());
    const auto names = t.weight_names();
    Napi::Array a = Napi::Array::New(info.Env(), names.size());
    for (size_t i = 0; i < names.size(); ++i) a.Set((uint32_t)i, names[i]);
    return a;
  }

  Napi::Value PredecessorNames(const Napi::CallbackInfo& info) {
    bort::Trainer& t = live(info.Env());
    const auto names = t.predecessor_names();
    Napi::Array a = Napi::Array::New(info.Env(), names.size());
    for (size_t i = 0; i < names.size(); ++i) a.Set((uint32_t)i, names[i]);
    return a;
  }

  std::string name_arg(const Napi::CallbackInfo& info, bort::Trainer& t, size_t* len) {
    if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "the weight name must be a string");
    const std::string n = info[0].As<Napi::String>().Utf8Value();
    *len = t.weight_size(n);
    if (!*len) throw Napi::RangeError::New(info.Env(), "this trainer has no weight named '" + n + "'");
    return n;
  }

  Napi::Value Weight(const Napi::CallbackInfo& info) {
    bort::Trainer& t = live(info.Env());
    size_t len;
    const std::string n = name_arg(info, t, &len);
    Napi::Float32Array a = Napi::Float32Array::New(info.Env(), len);
    t.read_weight(n, a.Data());
    return a;
  }

  Napi::Value Grad(const Napi::CallbackInfo& info) {
    bort::Trainer& t = live(info.Env());
    size_t len;
    const std::string n = name_arg(info, t, &len);
    Napi::Float32Array a = Napi::Float32Array::New(info.Env(), len);
    try {
      t.read_grad(n, a.Data());
    } catch (const bort::ConfigError& e) {
      throw Napi::RangeError::New(info.Env(), e.what());
    }
    return a;
  }

  Napi::Value SetWeight(const Napi::CallbackInfo& info) {
    bort::Trainer& t = live(info.Env());
    size_t len;
    const std::string n = name_arg(info, t, &len);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
        info[1].As<Napi::Float32Array>().ElementLength() != len)
      throw Napi::TypeError::New(info.Env(), "setWeight('" + n + "', data): data must be a Float32Array of " + std::to_string(len));
    t.write_weight(n, info[1].As<Napi::Float32Array>().Data());
    return info.Env().Undefined();
  }

  Napi::Value State(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bort::Trainer& t = live(env);
    const size_t n = t.param_count();
    Napi::Object o = Napi::Object::New(env);
    o.Set("step", (double)t.steps_done());
    const float* src[3] = {t.params(), t.moment1(), t.moment2()};
    const char* key[3] = {"params", "m", "v"};
    for (int i = 0; i < 3; ++i) {
      Napi::Float32Array a = Napi::Float32Array::New(env, n);
      std::memcpy(a.Data(), src[i], n * sizeof(float));
      o.Set(key[i], a);
    }
    return o;
  }

  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bort::Trainer& t = live(env);
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "setState(state): state must be { step, params, m, v }");
    Napi::Object o = info[0].As<Napi::Object>();
    const size_t n = t.param_count();
    const double step = number_of(o, "state", "step", -1, 0, 9007199254740991.0, true);
    if (step < 0) throw Napi::TypeError::New(env, "state.step is required");
    float* dst[3] = {t.params(), t.moment1(), t.moment2()};
    const char* key[3] = {"params", "m", "v"};
    std::vector<float*> srcs;
    for (int i = 0; i < 3; ++i) {
      Napi::Value v = o.Get(key[i]);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          v.As<Napi::Float32Array>().ElementLength() != n)
        throw Napi::TypeError::New(env, std::string("state.") + key[i] + " must be a Float32Array of " + std::to_string(n) +
                                            " values (a state saved by a trainer of the same model)");
      srcs.push_back(v.As<Napi::Float32Array>().Data());
    }
    for (int i = 0; i < 3; ++i) std::memcpy(dst[i], srcs[i], n * sizeof(float));
    t.set_steps_done((int64_t)step);
    return env.Undefined();
  }

  Napi::Value SavedBytes(const Napi::CallbackInfo& info) {
    bort::Trainer& t = live(info.Env());
    const int seq = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 128;
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("perToken", (double)t.saved_floats_per_token(seq) * sizeof(float));
    o.Set("perPosition", (double)t.saved_floats_per_position() * sizeof(float));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    t_.reset();  // a step in flight holds its own reference and frees the trainer when it ends
    return info.Env().Undefined();
  }

  Napi::Value Isa(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), t_ ? t_->kernels().name : "closed");
  }
  Napi::Value Steps(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), t_ ? (double)t_->steps_done() : 0.0);
  }

  std::shared_ptr<bort::Trainer> t_;
  bool busy_ = false;
};

}  // namespace

void init_binding(Napi::Env env, Napi::Object exports, ParseConfig parse, KernelsOrThrow kernels) {
  g_parse = parse;
  g_kernels = kernels;
  exports.Set("NativeTrainer", NativeTrainer::Define(env));
}

}  // namespace bort_train
