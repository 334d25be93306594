/** What every part of a synthesised graph is written with: the graph, the weights, the options. */
import type { GraphBuilder } from './builder.js';
import type { FamilyNames } from './family-names.js';
import type { ResolvedOptions } from './options.js';
import type { WeightDraw } from './random.js';

export interface SynthContext {
  g: GraphBuilder;
  draw: WeightDraw;
  o: ResolvedOptions;
  names: FamilyNames;
}
