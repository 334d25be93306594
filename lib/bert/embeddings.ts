/**
 * The embedding block: lookups in float tables (Gather, or a Slice of the position table) summed by
 * Adds and normalised by a LayerNorm. The word table is the largest one indexed by a graph input; a
 * second input-indexed table is the token-type table; a table indexed by computed positions is the
 * position table.
 */
import type { GraphIndex } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import { BortError } from '../errors.js';
import { layerNormOf } from './layernorm.js';
import type { Embedding, Embeddings } from './model.js';

/** The graph input an index tensor comes from, looking through Cast/Identity. */
function inputBehind(ix: GraphIndex, t: string): string | undefined {
  for (let i = 0; i < 4; i++) {
    if (ix.inputs.has(t)) return t;
    const p = ix.producer.get(t);
    if (!p || (p.opType !== 'Cast' && p.opType !== 'Identity')) return undefined;
    t = p.input[0];
  }
  return undefined;
}

function tableLookup(ix: GraphIndex, n: NodeProto): Embedding | undefined {
  if (n.opType !== 'Gather' && n.opType !== 'Slice') return undefined;
  const w = ix.weight(n.input[0]);
  if (!w || w.dims.length !== 2) return undefined;
  if (n.opType === 'Gather') {
    const axis = n.attribute.find((a) => a.name === 'axis');
    if (axis && Number(axis.i ?? 0) !== 0) return undefined;
  }
  return { gather: n, table: n.input[0], rows: w.dims[0], input: n.opType === 'Gather' ? inputBehind(ix, n.input[1]) : undefined };
}

/** Leaves of an Add tree ending at `t`. */
function addLeaves(ix: GraphIndex, t: string, out: string[]): void {
  const p = ix.producer.get(t);
  if (p && p.opType === 'Add' && p.input.every((i) => !ix.isConstant(i))) {
    for (const i of p.input) addLeaves(ix, i, out);
  } else {
    out.push(t);
  }
}

export function recognizeEmbeddings(ix: GraphIndex): Embeddings {
  const fail = (what: string) => new BortError(`embeddings: ${what}`, 'this graph does not look like a BERT model (it needs word embeddings summed and normalised by a LayerNorm)');
  for (const n of ix.graph.node) {
    const e = tableLookup(ix, n);
    if (!e || !e.input) continue;
    const hidden = ix.weight(e.table)!.dims[1];
    // follow the sum forward to its LayerNorm
    let t = n.output[0];
    for (let step = 0; step < 6; step++) {
      const ln = layerNormOf(ix, t, hidden);
      if (ln) {
        const leaves: string[] = [];
        addLeaves(ix, t, leaves);
        const lookups: Embedding[] = [];
        for (const leaf of leaves) {
          const p = ix.producer.get(leaf);
          const l = p && tableLookup(ix, p);
          if (!l) throw fail(`the term '${leaf}' of the embedding sum is not a table lookup`);
          if (ix.weight(l.table)!.dims[1] !== hidden) throw fail(`table '${l.table}' does not have ${hidden} columns`);
          lookups.push(l);
        }
        const byInput = lookups.filter((l) => l.input).sort((a, b) => b.rows - a.rows);
        const computed = lookups.filter((l) => !l.input);
        if (byInput.length === 0 || byInput.length > 2 || computed.length > 1) throw fail('expected a word table, optionally a token-type table and a position table');
        return { word: byInput[0], tokenType: byInput[1], position: computed[0], ln, output: ln.output };
      }
      const users = ix.consumersOf(t);
      if (users.length !== 1 || users[0].opType !== 'Add') break;
      t = users[0].output[0];
    }
  }
  throw fail('no word-embedding lookup feeding a LayerNorm was found');
}
