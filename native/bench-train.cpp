// Training-step benchmark (not a test): one AdamW step of a Bort-style student with the MLM + KL
// loss at 15% of the positions, random weights, random teacher logits.
//   bort_bench_train [layers heads hidden intermediate] [batch seq] [threads] [steps] [vocab]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "../native/test/random_model.h"
#include "train/trainer.h"

using namespace bort;

int main(int argc, char** argv) {
  auto arg = [&](int i, int def) { return argc > i ? std::atoi(argv[i]) : def; };
  EncoderConfig c;
  c.layers = arg(1, 3);
  c.heads = arg(2, 8);
  c.hidden = arg(3, 256);
  c.intermediate = arg(4, 512);
  c.headSize = c.hidden / c.heads;
  c.vocab = arg(9, 30522);
  c.maxPositions = 512;
  c.typeVocab = 2;
  c.scoreScale = 1.0f / std::sqrt((float)c.headSize);
  c.lnEps.assign(2 * c.layers, 1e-12f);
  c.mlm = true;
  c.threads = arg(7, 2);
  const int B = arg(5, 32), S = arg(6, 64), steps = arg(8, 5);
  const char* err = nullptr;
  const Kernels* k = active_kernels(&err);
  if (!k) {
    std::fprintf(stderr, "%s\n", err);
    return 1;
  }
  Weights w = make_weights(c, 1);
  w.erase("decoder_w");
  TrainOptions opt;
  opt.totalSteps = 1000;
  opt.warmupSteps = 50;
  Trainer tr(c, lookup(w), k, opt);
  check::Rng r(2);
  std::vector<int32_t> ids(B * S), types(B * S, 0), mask(B * S, 1), pos, labels;
  for (auto& v : ids) v = r.below(c.vocab);
  for (int i = 0; i < B * S; ++i)
    if (r.below(100) < 15) {
      pos.push_back(i);
      labels.push_back(r.below(c.vocab));
    }
  std::vector<float> teacher(pos.size() * (size_t)c.vocab);
  for (auto& v : teacher) v = r.uniform(-5, 5);
  TrainBatch b;
  b.ids = ids.data();
  b.types = types.data();
  b.mask = mask.data();
  b.batch = B;
  b.seq = S;
  b.positions = pos.data();
  b.npos = (int)pos.size();
  b.labels = labels.data();
  b.teacher = teacher.data();
  std::printf("isa %s, L=%d A=%d H=%d I=%d V=%d, batch %dx%d, %d loss positions, %d threads, %zu params\n", k->name, c.layers,
              c.heads, c.hidden, c.intermediate, c.vocab, B, S, b.npos, c.threads, tr.param_count());
  std::printf("saved activations: %zu B/token + %zu B/loss position\n", tr.saved_floats_per_token(S) * 4,
              tr.saved_floats_per_position() * 4);
  tr.step(b);  // warm-up: scratch allocation
  double best = 1e30, total = 0;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    StepResult res = tr.step(b);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    best = ms < best ? ms : best;
    total += ms;
    std::printf("step %lld loss %.4f (mlm %.4f kl %.4f) |g| %.3f lr %.2e: %.1f ms\n", (long long)res.step, res.loss, res.mlm,
                res.kl, res.gradNorm, res.lr, ms);
  }
  std::printf("mean %.1f ms/step (%.2f steps/s, %.0f tokens/s), best %.1f ms\n", total / steps, 1000.0 * steps / total,
              (double)B * S * steps * 1000.0 / total, best);
  return 0;
}
