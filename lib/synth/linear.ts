/**
 * A Linear layer as a PyTorch export writes it: MatMul with the weight (stored [in, out] under an
 * `onnx::MatMul_` name, or [out, in] as `prefix.weight` read through a Transpose), then Add of the bias.
 */
import type { SynthContext } from './context.js';
import { concatLinear, transposed, type LinearWeights } from './random.js';

export interface LinearProduct {
  /** The MatMul output, before the bias. */
  product: string;
  /** The bias initializer's name. */
  bias: string;
}

/** Stores the weights and writes the MatMul; the caller adds (or fuses) the bias. */
export function linearProduct(ctx: SynthContext, x: string, prefix: string, w: LinearWeights): LinearProduct {
  const { g } = ctx;
  const bias = g.init(`${prefix}.bias`, [w.outDim], w.bias);
  let product: string;
  if (ctx.o.weights === 'transposed') {
    // the drawn values are read as nn.Linear's own [out, in] layout
    const wt = g.init(`${prefix}.weight`, [w.outDim, w.inDim], w.weight);
    product = g.node('MatMul', [x, g.node('Transpose', [wt], { perm: [1, 0] })]);
  } else {
    product = g.node('MatMul', [x, g.init(`onnx::MatMul_${prefix}`, [w.inDim, w.outDim], w.weight)]);
  }
  return { product, bias };
}

/** Linear: MatMul then Add(bias, product). */
export function linear(ctx: SynthContext, x: string, prefix: string, w: LinearWeights, out?: string): string {
  const { product, bias } = linearProduct(ctx, x, prefix, w);
  return ctx.g.node('Add', [bias, product], {}, out);
}

/** The [in, out] matrix a Linear computes with, whichever layout its weights are stored in. */
export function inOutWeights(ctx: SynthContext, w: LinearWeights): LinearWeights {
  return ctx.o.weights === 'transposed' ? { ...w, weight: transposed(w.weight, w.outDim, w.inDim) } : w;
}

/** Linear layers side by side as one (a fused QKV), in the layout the options store weights in. */
export function fusedLinear(ctx: SynthContext, parts: LinearWeights[]): LinearWeights {
  const joined = concatLinear(parts.map((p) => inOutWeights(ctx, p)));
  return ctx.o.weights === 'transposed' ? { ...joined, weight: transposed(joined.weight, joined.inDim, joined.outDim) } : joined;
}
