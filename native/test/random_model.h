// Random encoder weights for the C++ tests, by the engine's weight names, and a lookup over them.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "check.h"
#include "encoder.h"

using Weights = std::map<std::string, std::vector<float>>;

inline Weights make_weights(const bort::EncoderConfig& c, uint64_t seed) {
  check::Rng r(seed);
  Weights w;
  const int H = c.hidden, Wd = c.heads * c.headSize, I = c.intermediate, V = c.vocab;
  auto rnd = [&](const std::string& n, size_t len, float s) {
    auto& v = w[n];
    v.resize(len);
    for (auto& x : v) x = r.uniform(-s, s);
  };
  auto gam = [&](const std::string& n, size_t len) {
    auto& v = w[n];
    v.resize(len);
    for (auto& x : v) x = r.uniform(0.8f, 1.2f);
  };
  rnd("word_emb", (size_t)V * H, 1.0f);
  rnd("pos_emb", (size_t)c.maxPositions * H, 0.5f);
  if (c.typeVocab) rnd("type_emb", (size_t)c.typeVocab * H, 0.5f);
  gam("emb_ln_g", H);
  rnd("emb_ln_b", H, 0.1f);
  for (int l = 0; l < c.layers; ++l) {
    auto s = "." + std::to_string(l);
    const float a = 1.0f / std::sqrt((float)H);
    for (const char* n : {"q", "k", "v"}) {
      rnd(std::string(n) + "_w" + s, (size_t)H * Wd, a);
      rnd(std::string(n) + "_b" + s, Wd, 0.1f);
    }
    rnd("o_w" + s, (size_t)Wd * H, 1.0f / std::sqrt((float)Wd));
    rnd("o_b" + s, H, 0.1f);
    gam("ln1_g" + s, H);
    rnd("ln1_b" + s, H, 0.1f);
    rnd("ffn_in_w" + s, (size_t)H * I, a);
    rnd("ffn_in_b" + s, I, 0.1f);
    rnd("ffn_out_w" + s, (size_t)I * H, 1.0f / std::sqrt((float)I));
    rnd("ffn_out_b" + s, H, 0.1f);
    gam("ln2_g" + s, H);
    rnd("ln2_b" + s, H, 0.1f);
  }
  if (c.pooler) {
    rnd("pooler_w", (size_t)H * H, 1.0f / std::sqrt((float)H));
    rnd("pooler_b", H, 0.1f);
  }
  if (c.mlm) {
    rnd("mlm_w", (size_t)H * H, 1.0f / std::sqrt((float)H));
    rnd("mlm_b", H, 0.1f);
    gam("mlm_ln_g", H);
    rnd("mlm_ln_b", H, 0.1f);
    rnd("decoder_w", (size_t)H * V, 1.0f / std::sqrt((float)H));
    rnd("decoder_b", V, 0.1f);
  }
  if (c.classifierLabels) {
    rnd("cls_w", (size_t)H * c.classifierLabels, 1.0f / std::sqrt((float)H));
    rnd("cls_b", c.classifierLabels, 0.1f);
  }
  if (c.tokenLabels) {
    rnd("tok_w", (size_t)H * c.tokenLabels, 1.0f / std::sqrt((float)H));
    rnd("tok_b", c.tokenLabels, 0.1f);
  }
  return w;
}

inline bort::WeightLookup lookup(Weights& w) {
  return [&w](const std::string& n, size_t* len) -> const float* {
    auto it = w.find(n);
    if (it == w.end()) return nullptr;
    *len = it->second.size();
    return it->second.data();
  };
}
