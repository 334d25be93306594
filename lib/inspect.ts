/**
 * `inspect`: what a BERT ONNX model is, as recognised: architecture, sizes, parameters, heads, I/O.
 */
import { loadModel } from './onnx/io.js';
import { recognize } from './bert/recognize.js';
import { countParameters, weightBytes } from './bert/params.js';
import type { Arch } from './bert/model.js';

export interface InspectSummary {
  path: string;
  arch: Arch;
  vocab: number;
  params: number;
  headSize: number;
  attentionWidth: number;
  maxPositions: number;
  typeVocab: number;
  scoreScale: number;
  layerNorm: 'fused' | 'decomposed';
  activation: string;
  heads: { pooler: boolean; mlm: boolean; mlmTied: boolean; classifiers: { source: string; labels: number }[] };
  inputs: { ids: string; mask?: string; tokenTypes?: string };
  outputs: { name: string; role: string }[];
  opset: number;
  irVersion: number;
  producer: string;
  fileBytes: number;
  weightBytes: number;
  /** How the file stores its weights. */
  weightType: 'float32' | 'float16';
  externalData: boolean;
}

export function inspect(path: string): InspectSummary {
  const loaded = loadModel(path);
  const m = recognize(loaded.model);
  const opset = loaded.model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  return {
    path: loaded.path,
    arch: m.arch,
    vocab: m.vocab,
    params: countParameters(m),
    headSize: m.headSize,
    attentionWidth: m.attentionWidth,
    maxPositions: m.maxPositions,
    typeVocab: m.typeVocab,
    scoreScale: m.layers[0].attention.scoreScale,
    layerNorm: m.layers[0].ln1.kind,
    activation: m.layers[0].ffn.activation,
    heads: {
      pooler: !!m.pooler, mlm: !!m.mlm, mlmTied: !!m.mlm?.tiedToWordEmbeddings,
      classifiers: m.classifiers.map((c) => ({ source: c.source, labels: c.linear.outDim })),
    },
    inputs: { ids: m.inputs.ids, mask: m.inputs.mask, tokenTypes: m.inputs.tokenTypes },
    outputs: m.outputs.map((o) => ({ name: o.name, role: o.role })),
    opset: Number(opset?.version ?? 0),
    irVersion: Number(loaded.model.irVersion ?? 0),
    producer: `${loaded.model.producerName ?? ''} ${loaded.model.producerVersion ?? ''}`.trim(),
    fileBytes: loaded.fileBytes,
    weightBytes: weightBytes(m),
    weightType: m.view.halfPrecision ? 'float16' : 'float32',
    externalData: loaded.externalData,
  };
}
