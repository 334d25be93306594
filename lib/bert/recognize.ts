/**
 * The driver: recognises a BERT encoder by following its residual stream. From the embedding
 * LayerNorm, each layer is two residual blocks — attention, then feed-forward — each ending in an Add
 * of the stream and a projection's output, followed by a LayerNorm that yields the next stream tensor.
 * Whatever reads the last stream tensor is a head. Nothing here depends on node names or op order.
 */
import { GraphIndex } from '../onnx/graph.js';
import { tensorDims } from '../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../onnx/types.js';
import { BortError } from '../errors.js';
import { recognizeAttention } from './attention.js';
import { recognizeEmbeddings } from './embeddings.js';
import { recognizeFfn } from './ffn.js';
import { recognizeHeads } from './heads.js';
import { layerNormOf } from './layernorm.js';
import { linearAt, linearsByInput } from './linear.js';
import type { BertModel, Layer, Linear, OutputRole } from './model.js';

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

/** Walks back from the attention mask added to the scores to find the graph input and the mask value. */
function maskSource(ix: GraphIndex, mask: string): { input?: string; value?: number } {
  let value: number | undefined;
  const seen = new Set<string>();
  const queue = [mask];
  while (queue.length) {
    const t = queue.shift()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (ix.inputs.has(t)) return { input: t, value };
    const p = ix.producer.get(t);
    if (!p) continue;
    if (p.opType === 'Mul' && value === undefined) {
      const c = p.input.map((i) => ix.scalar(i)).find((v) => v !== undefined);
      if (c !== undefined) value = c;
    }
    for (const i of p.input) if (i && !ix.isConstant(i)) queue.push(i);
  }
  return { value };
}

export function recognize(model: ModelProto): BertModel {
  const ix = new GraphIndex(model.graph!);
  const byInput = linearsByInput(ix);
  const embeddings = recognizeEmbeddings(ix);
  const hidden = ix.weight(embeddings.word.table)!.dims[1];
  const layers: Layer[] = [];
  let x = embeddings.output;
  const visited = new Set<string>();
  for (;;) {
    if (visited.has(x)) throw new BortError(`the residual stream loops back to '${x}'`, 'the graph has a cycle or duplicate tensor names; it is not a valid ONNX model');
    visited.add(x);
    const att = blockAt(ix, x, byInput);
    if (!att || att.readers.length < 3) break;
    const index = layers.length;
    const attention = recognizeAttention(ix, att.projection, att.readers, index);
    const ln1 = layerNormOf(ix, att.residual.output[0], hidden);
    if (!ln1) throw new BortError(`layer ${index}: no LayerNorm after the attention residual`, 'bort-compress reads post-LayerNorm BERT encoders only');
    const ffnBlock = blockAt(ix, ln1.output, byInput);
    const ffn = ffnBlock && recognizeFfn(ix, ffnBlock.projection, ffnBlock.readers);
    if (!ffnBlock || !ffn) throw new BortError(`layer ${index}: no feed-forward block after attention`, 'this graph does not look like a BERT encoder');
    const ln2 = layerNormOf(ix, ffnBlock.residual.output[0], hidden);
    if (!ln2) throw new BortError(`layer ${index}: no LayerNorm after the feed-forward residual`, 'bort-compress reads post-LayerNorm BERT encoders only');
    layers.push({ index, input: x, attention, attentionResidual: att.residual, ln1, ffn, ffnResidual: ffnBlock.residual, ln2, output: ln2.output });
    x = ln2.output;
  }
  if (layers.length === 0) {
    throw new BortError('no transformer layer found after the embeddings (self-attention + feed-forward with residual Adds and LayerNorms)',
      'this graph does not look like a BERT encoder; fused com.microsoft Attention graphs are not supported, export without onnxruntime optimisations');
  }
  const first = layers[0].attention;
  for (const l of layers) {
    const a = l.attention;
    if (a.heads !== first.heads || a.headSize !== first.headSize || l.ffn.in.outDim !== layers[0].ffn.in.outDim) {
      throw new BortError(`layer ${l.index} has a different shape from layer 0`, 'bort-compress reads encoders whose layers all have one shape');
    }
  }
  const heads = recognizeHeads(ix, x, hidden, embeddings);
  const mask = first.maskTensor ? maskSource(ix, first.maskTensor) : {};
  const wordDims = tensorDims(ix.weight(embeddings.word.table)!.tensor);

  const outputs: BertModel['outputs'] = [];
  for (const o of model.graph!.output) {
    const name = o.name ?? '';
    let role: OutputRole | undefined;
    let source = name;
    if (name === x) role = 'hidden';
    else if (heads.pooler && name === heads.pooler.output) role = 'pooled';
    else if (heads.mlm && name === heads.mlm.decoder.output) role = 'mlm';
    else if (heads.classifiers.some((c) => c.linear.output === name)) role = 'classifier';
    else {
      const p = ix.producer.get(name);
      if (p && p.opType === 'Identity' && p.input[0] === x) { role = 'hidden'; source = x; }
    }
    if (!role) throw new BortError(`graph output '${name}' is not the encoder output or a recognised head`, 'bort-compress reads BERT graphs whose outputs are hidden states, pooled output, masked-LM or classifier logits');
    outputs.push({ name, role, source });
  }
  return {
    model, index: ix,
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
    },
    maskValue: mask.value,
    embeddings, layers, ...heads, outputs,
  };
}
