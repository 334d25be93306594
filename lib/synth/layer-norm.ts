/**
 * LayerNorm as exporters write it: decomposed (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add), fused
 * LayerNormalization (opset 17), or onnxruntime's SkipLayerNormalization (residual Add, bias and
 * LayerNorm in one node).
 */
import type { SynthContext } from './context.js';
import type { LayerNormWeights } from './random.js';

export const LAYER_NORM_EPSILON = 1e-12;

export function layerNorm(ctx: SynthContext, x: string, prefix: string, w: LayerNormWeights, out?: string): string {
  const { g, o } = ctx;
  const H = w.gamma.length;
  const gamma = g.init(`${prefix}.weight`, [H], w.gamma);
  const beta = g.init(`${prefix}.bias`, [H], w.beta);
  if (o.fusedLayerNorm) return g.node('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: { float: LAYER_NORM_EPSILON } }, out);
  const rm = (t: string) => (o.opset >= 18 ? g.node('ReduceMean', [t, g.constInt([-1])]) : g.node('ReduceMean', [t], { axes: [-1] }));
  const mean = rm(x);
  const sub = g.node('Sub', [x, mean]);
  const variance = rm(g.node('Pow', [sub, g.constFloat(2)]));
  const std = g.node('Sqrt', [g.node('Add', [variance, g.constFloat(LAYER_NORM_EPSILON)])]);
  return g.node('Add', [g.node('Mul', [g.node('Div', [sub, std]), gamma]), beta], {}, out);
}

/** SkipLayerNormalization(input, skip, gamma, beta, bias): LayerNorm(input + bias + skip). */
export function skipLayerNorm(ctx: SynthContext, input: string, skip: string, bias: string, prefix: string, w: LayerNormWeights, out?: string): string {
  const { g } = ctx;
  const H = w.gamma.length;
  const gamma = g.init(`${prefix}.weight`, [H], w.gamma);
  const beta = g.init(`${prefix}.bias`, [H], w.beta);
  return g.contrib('SkipLayerNormalization', [input, skip, gamma, beta, bias], { epsilon: { float: LAYER_NORM_EPSILON } }, out);
}
