/**
 * The feed-forward activation after a Linear: erf GELU or its tanh approximation as PyTorch exports
 * them, or onnxruntime's fused forms (BiasGelu, FastGelu with the bias folded in, Gelu).
 */
import type { SynthContext } from './context.js';
import type { LinearProduct } from './linear.js';

/** 0.5·x·(1 + erf(x/√2)), as torch.nn.functional.gelu exports. */
export function erfGelu(ctx: SynthContext, x: string): string {
  const { g } = ctx;
  const erf = g.node('Erf', [g.node('Div', [x, g.constFloat(Math.SQRT2)])]);
  return g.node('Mul', [g.node('Mul', [x, g.node('Add', [erf, g.constFloat(1)])]), g.constFloat(0.5)]);
}

/** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), as transformers' gelu_new exports. */
export function tanhGelu(ctx: SynthContext, x: string): string {
  const { g } = ctx;
  const half = g.node('Mul', [g.constFloat(0.5), x]);
  const cube = g.node('Pow', [x, g.constFloat(3)]);
  const inner = g.node('Add', [x, g.node('Mul', [g.constFloat(0.044715), cube])]);
  const t = g.node('Tanh', [g.node('Mul', [g.constFloat(Math.sqrt(2 / Math.PI)), inner])]);
  return g.node('Mul', [half, g.node('Add', [g.constFloat(1), t])]);
}

/** The activation of a Linear's output (bias not yet added), in the form the options ask for. */
export function activate(ctx: SynthContext, lin: LinearProduct): string {
  const { g, o } = ctx;
  if (o.fused.has('bias-gelu')) return g.contrib('BiasGelu', [lin.product, lin.bias]);
  if (o.fused.has('fast-gelu')) return g.contrib('FastGelu', [lin.product, lin.bias]);
  const sum = g.node('Add', [lin.bias, lin.product]);
  if (o.fused.has('gelu')) return g.contrib('Gelu', [sum]);
  return o.activation === 'gelu-tanh' ? tanhGelu(ctx, sum) : erfGelu(ctx, sum);
}
