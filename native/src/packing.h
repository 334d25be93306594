// Skipping padding: the plan that packs a batch's real tokens (attention-mask 1) into one
// [tokens, H] matrix, the in-place scatter of packed rows back to [batch, seq] with zeros at the
// padded positions, and the per-head key bounds that prove, at run time, that the padded
// computation's masked keys contribute exactly 0 to the real positions (so packing changes nothing
// but the order of a few float sums). Portable; no ISA flags, no N-API.
#pragma once

#include <functional>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "encoder.h"

namespace bort {

struct PackPlan {
  int tokens = 0;               // real tokens in the batch
  std::vector<int32_t> flat;    // [tokens] packed row t -> its flat position b*seq + s (increasing)
  std::vector<int32_t> start;   // [batch + 1] sequence b owns packed rows [start[b], start[b+1])
};

// Plans packing for one run, or returns false when the batch must run padded: no mask, a mask value
// other than 0 and 1, no padding at all (nothing to skip), or a sequence whose position 0 is padding
// (the pooler reads position 0 — with no token there its value comes from the padded computation).
// Holes in a row (1 0 1) are packed like trailing padding: each token keeps its own position.
bool plan_packing(const RunInputs& in, PackPlan* plan);

// rows [0, plan.tokens) of buf (width floats each) hold the packed rows; moves each to its flat
// position and zeroes every other row of the [batch*seq, width] buffer.
void unpack_rows(float* buf, size_t width, const PackPlan& plan, int batch, int seq);

// Zeroes the rows of a [batch*seq, width] buffer whose mask is 0 (the padded path's outputs).
void zero_masked_rows(float* buf, size_t width, const int32_t* mask, size_t rows);

// For every (layer, head): an upper bound of the Euclidean norm of that head's key vector for ANY
// input, from the weights alone. A layer's input is a LayerNorm output g*z + b with |z| <= sqrt(H),
// so |x| <= max|g|*sqrt(H) + |b|, and |W_k x + b_k| <= |W_k|_F |x| + |b_k|. Returned [layers*heads],
// widened by 1% for float rounding. `w` must hold every weight the encoder checked.
// `int8_key_fro(layer, head)`, when given and >= 0: the layer's key projection runs int8, and this is
// |W_k|_F of the head's dequantized int8 weights; its input is then quantized per row (symmetric,
// max -> 127), which moves each element by at most max|x|/254 <= |x|/254, so |x_q| <= |x| (1 + sqrt(H)/254).
// `int8_key_static(layer)`, when given and > 0: that int8 key projection quantizes its input with this
// static scale s instead (rounding moves an element by at most s/2, clipping only shrinks it), so
// |x_q| <= |x| + sqrt(H)·s/2.
std::vector<double> key_norm_bounds(const EncoderConfig& cfg, const WeightLookup& w,
                                    const std::function<double(int layer, int head)>& int8_key_fro = nullptr,
                                    const std::function<double(int layer)>& int8_key_static = nullptr);

// Margin below which exp() of a float is exactly 0 in float32 (e^-104 < the smallest denormal),
// with room to spare: a masked key contributes exactly 0 when its score minus the row's real maximum
// is below -kMaskedMargin.
constexpr double kMaskedMargin = 128.0;

}  // namespace bort
