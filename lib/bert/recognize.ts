/**
 * The driver: recognises a BERT encoder by following its residual stream. From the embedding
 * LayerNorm, each layer is two residual blocks — attention, then feed-forward — each ending in an Add
 * of the stream and a projection's output, followed by a LayerNorm that yields the next stream tensor.
 * Whatever reads the last stream tensor is a head. Nothing here depends on node names or op order.
 */
import { attrInt, type GraphIndex } from '../onnx/graph.js';
import { tensorDims } from '../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto } from '../onnx/types.js';
import { BortError, quoteName } from '../errors.js';
import { checkGraph } from '../onnx/validate.js';
import { recognizeAttention } from './attention.js';
import { recognizeEmbeddings } from './embeddings.js';
import { ACTIVATION_TOLERANCE, HALF_PRECISION_ACTIVATION_TOLERANCE, recognizeFfn } from './ffn.js';
import { recognizeHeads } from './heads.js';
import { layerNormOf } from './layernorm.js';
import { linearAt, linearsByInput } from './linear.js';
import type { Attention, AttentionMask, BertModel, Ffn, Layer, Linear, OutputRole } from './model.js';
import { normalize, type GraphView } from './normalize/index.js';
import { declaredSequenceLength } from './normalize/fixed-sequence.js';

interface Block {
  residual: NodeProto;
  projection: Linear;
  readers: Linear[];
}

/** The residual block that starts at stream tensor `x`: an Add(x, projection(...)). */
function blockAt(ix: GraphIndex, x: string, byInput: Map<string, Linear[]>): Block | undefined {
  for (const n of ix.consumersOf(x)) {
    if (n.opType !== 'Add' || n.input.length !== 2) continue;
    const other = n.input[0] === x ? n.input[1] : n.input[0];
    const p = ix.producer.get(other);
    if (!p) continue;
    const proj = linearAt(ix, p.opType === 'Add' ? ix.producer.get(p.input.find((i) => !ix.isConstant(i)) ?? '') ?? p : p);
    if (!proj || proj.output !== other) continue;
    return { residual: n, projection: proj, readers: byInput.get(x) ?? [] };
  }
  return undefined;
}

/** Graph inputs declared as [batch, seq] (rank 2, or of unknown shape). */
function sequenceInputs(model: ModelProto, ix: GraphIndex): Set<string> {
  const out = new Set<string>();
  for (const i of model.graph!.input) {
    const name = i.name ?? '';
    if (!ix.inputs.has(name)) continue;
    const dims = i.type?.tensorType?.shape?.dim;
    if (!dims || dims.length === 2) out.add(name);
  }
  return out;
}

/** The one mask all layers apply, or why there is none the engine can use. */
function modelMask(layers: Layer[], ids: string, tokenTypes?: string): { input?: string; value?: number; kind?: AttentionMask['kind']; problem?: string } {
  const masks = layers.map((l) => l.attention.mask);
  if (masks.every((m) => !m)) return {};
  const first = masks.find((m) => m)!;
  const input = first.input;
  const out = { input: input === ids || input === tokenTypes ? undefined : input, value: first.value, kind: first.kind };
  for (let i = 0; i < masks.length; i++) {
    const m = masks[i];
    if (!m) return { ...out, value: undefined, problem: `layer ${i} applies no attention mask while others do` };
    if (m.problem) return { ...out, value: undefined, problem: `layer ${i}: ${m.problem}` };
    if (m.input !== input || m.kind !== first.kind || !Object.is(m.value, first.value)) return { ...out, value: undefined, problem: `layer ${i} applies a different attention mask from layer 0` };
  }
  if (input === ids || input === tokenTypes) return { value: undefined, problem: `the attention mask is computed from ${quoteName(input)}, the token ids or types` };
  return out;
}

/** Every projection of a layer reads and writes the widths the stream and the layer's shape say. */
function checkWidths(layer: number, hidden: number, a: Attention, f: Ffn): void {
  const check = (role: string, l: Linear, inDim: number, outDim: number) => {
    if (l.inDim !== inDim || l.outDim !== outDim) {
      throw new BortError(`layer ${layer} ${role} weight ${quoteName(l.weight)} maps ${l.inDim} to ${l.outDim} values, not ${inDim} to ${outDim}`,
        'the layer\'s weights do not fit together; the file is damaged or not a BERT model');
    }
  };
  const width = a.heads * a.headSize;
  check('attention query', a.q, hidden, width);
  check('attention key', a.k, hidden, width);
  check('attention value', a.v, hidden, width);
  check('attention output', a.o, width, hidden);
  check('feed-forward input', f.in, hidden, f.in.outDim);
  check('feed-forward output', f.out, f.in.outDim, hidden);
}

/** The tensor a graph output passes on unchanged (through Identity, or a Cast to float32 of a float tensor), or itself. */
function passedOn(ix: GraphIndex, name: string, known: (t: string) => boolean): string {
  const p = ix.producer.get(name);
  if (p && (!p.domain || p.domain === 'ai.onnx') && known(p.input[0]) && (p.opType === 'Identity' || (p.opType === 'Cast' && attrInt(p, 'to', 0) === DataType.FLOAT))) return p.input[0];
  return name;
}

/**
 * When recognition of a normalised view fails and a pass left fused nodes unread (or onnxruntime
 * nodes no pass reads remain), that is the part to name.
 */
function unreadPart(view: GraphView, cause: BortError): BortError {
  const problem = cause.message.slice(0, cause.message.length - cause.fix.length - 2);
  const first = view.unread[0];
  if (first) return new BortError(`${first.reason}, which bort-compress cannot read (${problem})`, 'export the model without onnxruntime optimisations, or optimise it with the options these forms need');
  const foreign = view.graph.node.find((n) => n.domain && n.domain !== 'ai.onnx');
  if (foreign) {
    return new BortError(`${problem}; the graph has the node ${quoteName(foreign.name || foreign.output[0])} of the ${quoteName(foreign.domain)} operator ${quoteName(foreign.opType)}, which bort-compress does not read`,
      'export the model without onnxruntime optimisations, or report the operator');
  }
  return cause;
}

export function recognize(model: ModelProto): BertModel {
  if (!model.graph) throw new BortError('the model has no graph', 'the file is not an ONNX model');
  checkGraph(model.graph);
  const view = normalize(model);
  try {
    return recognizeView(model, view);
  } catch (e) {
    throw e instanceof BortError ? unreadPart(view, e) : e;
  }
}

function recognizeView(model: ModelProto, view: GraphView): BertModel {
  const ix = view.index;
  const tolerance = view.halfPrecision ? HALF_PRECISION_ACTIVATION_TOLERANCE : ACTIVATION_TOLERANCE;
  const opset = Number(model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0);
  const byInput = linearsByInput(ix);
  const seqInputs = sequenceInputs(model, ix);
  const embeddings = recognizeEmbeddings(ix, seqInputs);
  const hidden = ix.weight(embeddings.word.table)!.dims[1];
  const layers: Layer[] = [];
  let x = embeddings.output;
  const visited = new Set<string>();
  for (;;) {
    if (visited.has(x)) throw new BortError(`the residual stream loops back to ${quoteName(x)}`, 'the graph has a cycle or duplicate tensor names; it is not a valid ONNX model');
    visited.add(x);
    const att = blockAt(ix, x, byInput);
    if (!att || att.readers.length < 3) break;
    const index = layers.length;
    const attention = recognizeAttention(ix, att.projection, att.readers, index, { opset, seqInputs });
    const ln1 = layerNormOf(ix, att.residual.output[0], hidden);
    if (!ln1) throw new BortError(`layer ${index}: no LayerNorm after the attention residual`, 'bort-compress reads post-LayerNorm BERT encoders only');
    const ffnBlock = blockAt(ix, ln1.output, byInput);
    const ffn = ffnBlock && recognizeFfn(ix, ffnBlock.projection, ffnBlock.readers, index, tolerance);
    if (!ffnBlock || !ffn) throw new BortError(`layer ${index}: no feed-forward block after attention`, 'this graph does not look like a BERT encoder');
    const ln2 = layerNormOf(ix, ffnBlock.residual.output[0], hidden);
    if (!ln2) throw new BortError(`layer ${index}: no LayerNorm after the feed-forward residual`, 'bort-compress reads post-LayerNorm BERT encoders only');
    checkWidths(index, hidden, attention, ffn);
    layers.push({ index, input: x, attention, attentionResidual: att.residual, ln1, ffn, ffnResidual: ffnBlock.residual, ln2, output: ln2.output });
    x = ln2.output;
  }
  if (layers.length === 0) {
    throw new BortError('no transformer layer found after the embeddings (self-attention + feed-forward with residual Adds and LayerNorms)',
      'this graph does not look like a BERT encoder');
  }
  const first = layers[0].attention;
  for (const l of layers) {
    const a = l.attention;
    if (a.heads !== first.heads || a.headSize !== first.headSize || l.ffn.in.outDim !== layers[0].ffn.in.outDim) {
      throw new BortError(`layer ${l.index} has a different shape from layer 0`, 'bort-compress reads encoders whose layers all have one shape');
    }
  }
  const heads = recognizeHeads(ix, x, hidden, embeddings, tolerance);
  const mask = modelMask(layers, embeddings.word.input!, embeddings.tokenType?.input);
  const wordDims = tensorDims(ix.weight(embeddings.word.table)!.tensor);

  const outputs: BertModel['outputs'] = [];
  const roleOf = (t: string): OutputRole | undefined => {
    if (t === x) return 'hidden';
    if (heads.pooler && t === heads.pooler.output) return 'pooled';
    if (heads.mlm && t === heads.mlm.decoder.output) return 'mlm';
    if (heads.classifiers.some((c) => c.linear.output === t)) return 'classifier';
    return undefined;
  };
  for (const o of model.graph!.output) {
    const name = o.name ?? '';
    const split = heads.classifiers.find((c) => c.columns?.includes(name));
    if (split) {
      outputs.push({ name, role: 'classifier', source: split.linear.output, column: split.columns!.indexOf(name) });
      continue;
    }
    const source = roleOf(name) ? name : passedOn(ix, name, (t) => !!roleOf(t));
    const role = roleOf(source);
    if (!role) throw new BortError(`graph output ${quoteName(name)} is not the encoder output or a recognised head`, 'bort-compress reads BERT graphs whose outputs are hidden states, pooled output, masked-LM, classifier or question-answering logits');
    outputs.push({ name, role, source });
  }
  return {
    model, index: ix, view,
    arch: { layers: layers.length, heads: first.heads, hidden, intermediate: layers[0].ffn.in.outDim },
    vocab: wordDims[0],
    maxPositions: embeddings.position?.rows ?? 0,
    typeVocab: embeddings.tokenType?.rows ?? 0,
    headSize: first.headSize,
    attentionWidth: first.heads * first.headSize,
    inputs: {
      ids: embeddings.word.input!,
      tokenTypes: embeddings.tokenType?.input,
      mask: mask.input,
      all: [...ix.inputs],
      fixedLength: declaredSequenceLength(model)?.length,
    },
    maskValue: mask.value,
    maskKind: mask.kind,
    maskProblem: mask.problem,
    maskReading: mask.input ? view.maskReading.get(mask.input) : undefined,
    embeddings, layers, ...heads, outputs,
  };
}
