/**
 * The embedding block: lookups in float tables (Gather, or a Slice of the position table) summed by
 * Adds and normalised by a LayerNorm. The word table is the largest one indexed by a graph input; a
 * second input-indexed table is the token-type table, and so is a table read with constant ids (an
 * export without a token_type_ids input, lib/bert/token-types.ts); a table indexed by computed
 * positions is the position table, and which rows it reads is recorded (lib/bert/positions.ts).
 */
import type { GraphIndex } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import { BortError, quoteName } from '../errors.js';
import { layerNormOf } from './layernorm.js';
import type { Embedding, Embeddings } from './model.js';
import { positionIdsOf } from './positions.js';
import { constantIds } from './token-types.js';

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
  if (w.dims[0] === 0 || w.dims[1] === 0) {
    throw new BortError(`the embedding table ${quoteName(n.input[0])} has shape [${w.dims.join(', ')}]`, 'a table with no rows or no columns holds no embeddings; the file is damaged');
  }
  return { gather: n, table: n.input[0], rows: w.dims[0], input: n.opType === 'Gather' ? inputBehind(ix, n.input[1]) : undefined };
}

/** Leaves of the tree of Adds (of computed tensors) ending at `t`, at most `limit` of them. */
function addLeaves(ix: GraphIndex, t: string, limit: number): string[] | undefined {
  const out: string[] = [];
  const stack = [t];
  const seen = new Set<string>();
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x)) return undefined; // a term used twice is not a sum of lookups
    seen.add(x);
    const p = ix.producer.get(x);
    if (p && p.opType === 'Add' && p.input.length === 2 && p.input.every((i) => !ix.isConstant(i))) stack.push(p.input[1], p.input[0]);
    else out.push(x);
    if (out.length + stack.length > limit) return undefined;
  }
  return out;
}

export function recognizeEmbeddings(ix: GraphIndex, seqInputs: Set<string>): Embeddings {
  const fail = (what: string) => new BortError(`embeddings: ${what}`, 'this graph does not look like a BERT model (it needs word embeddings summed and normalised by a LayerNorm)');
  const tried = new Set<string>(); // each tensor is looked at once, however many lookups lead to it
  for (const n of ix.graph.node) {
    const e = tableLookup(ix, n);
    if (!e || !e.input) continue;
    const hidden = ix.weight(e.table)!.dims[1];
    // follow the sum forward to its LayerNorm
    let t = n.output[0];
    for (let step = 0; step < 6 && !tried.has(t); step++) {
      tried.add(t);
      const ln = layerNormOf(ix, t, hidden);
      if (ln) {
        const leaves = addLeaves(ix, t, 8);
        if (!leaves) throw fail(`the sum ${quoteName(t)} is not a sum of up to three table lookups`);
        const lookups: Embedding[] = [];
        for (const leaf of leaves) {
          const p = ix.producer.get(leaf);
          const l = p && tableLookup(ix, p);
          if (!l) throw fail(`the term ${quoteName(leaf)} of the embedding sum is not a table lookup`);
          if (ix.weight(l.table)!.dims[1] !== hidden) throw fail(`table ${quoteName(l.table)} does not have ${hidden} columns`);
          lookups.push(l);
        }
        const byInput = lookups.filter((l) => l.input).sort((a, b) => b.rows - a.rows);
        const inputs = new Set(seqInputs);
        if (byInput[0]) inputs.add(byInput[0].input!);
        // a lookup with constant ids is the token-type table read without an input
        const constant: Embedding[] = [];
        const computed: Embedding[] = [];
        for (const l of lookups.filter((x) => !x.input)) {
          const c = l.gather.opType === 'Gather' ? constantIds(ix, l.gather.input[1], inputs) : undefined;
          if (!c) { computed.push(l); continue; }
          if (!Number.isInteger(c.value) || c.value < 0 || c.value >= l.rows) throw fail(`table ${quoteName(l.table)} is read at the constant row ${c.value}, outside its ${l.rows} rows`);
          constant.push({ ...l, constantRow: c.value, maxSeq: c.maxSeq === Infinity ? undefined : c.maxSeq });
        }
        if (byInput.length === 0 || byInput.length + constant.length > 2 || computed.length > 1) throw fail('expected a word table, optionally a token-type table and a position table');
        const word = byInput[0], tokenType = byInput[1] ?? constant[0], position = computed[0];
        if (tokenType && tokenType.input === word.input) throw fail(`the word and token-type tables are both indexed by ${quoteName(word.input)}`);
        if (tokenType?.input) inputs.add(tokenType.input);
        const positionIds = position ? positionIdsOf(ix, position, inputs, word.input!) : undefined;
        return { word, tokenType, position, positionIds, ln, output: ln.output };
      }
      const users = ix.consumersOf(t);
      if (users.length !== 1 || users[0].opType !== 'Add') break;
      t = users[0].output[0];
    }
  }
  throw fail('no word-embedding lookup feeding a LayerNorm was found');
}
