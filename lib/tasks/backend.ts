/**
 * What a text task needs from a model: its input roles, sizes, and one run on a padded batch of ids
 * whose outputs are named by role (hidden states, pooled output, masked-LM logits, classifier logits,
 * QA start/end logits). The native `Encoder` is the default; onnxruntime-node is used only when asked
 * (lib/tasks/ort-backend.ts).
 */
import { Encoder, type TensorOutput } from '../runtime/encoder.js';
import { BortError } from '../errors.js';

export interface PaddedBatch {
  ids: Int32Array;
  mask: Int32Array;
  types: Int32Array;
  batch: number;
  seq: number;
}

export interface RoleOutputs {
  /** [batch, seq, hidden] */
  hidden?: Float32Array;
  /** [batch, hidden] */
  pooled?: Float32Array;
  /** [batch, seq, vocab] */
  mlm?: Float32Array;
  /** [batch, labels] */
  classifier?: Float32Array;
  /** [batch, seq] each */
  start?: Float32Array;
  end?: Float32Array;
}

export interface Backend {
  readonly engine: 'native' | 'onnxruntime';
  readonly maxPositions: number;
  readonly vocab: number;
  readonly hidden: number;
  /** Token types the model embeds (0 when it takes no token_type_ids). */
  readonly typeVocab: number;
  /** Classifier labels, when the model has a classifier. */
  readonly labels?: number;
  /** Which outputs this model gives. */
  readonly roles: Set<keyof RoleOutputs>;
  run(b: PaddedBatch): Promise<RoleOutputs>;
  close(): void | Promise<void>;
}

/** The native engine. Output roles are told apart by shape; a model where two roles share one is refused. */
export async function nativeBackend(file: string, threads?: number): Promise<Backend> {
  const enc = await Encoder.load(file, threads ? { threads } : {});
  const info = enc.info;
  const hidden = enc.arch.hidden;
  const roleOf = (o: TensorOutput): keyof RoleOutputs | undefined => {
    if (o.dims.length === 3) return o.dims[2] === info.vocab && info.mlm ? 'mlm' : o.dims[2] === hidden ? 'hidden' : undefined;
    if (o.dims.length === 2) return info.classifierLabels && o.dims[1] === info.classifierLabels ? 'classifier' : o.dims[1] === hidden ? 'pooled' : undefined;
    return undefined;
  };
  if (info.mlm && info.vocab === hidden && enc.outputNames.length > 1) {
    enc.close();
    throw new BortError('the model\'s vocabulary size equals its hidden size, so its outputs cannot be told apart by shape', 'export the model with only the output you need');
  }
  if (info.classifierLabels === hidden && enc.outputNames.length > 1) {
    enc.close();
    throw new BortError('the model\'s label count equals its hidden size, so its outputs cannot be told apart by shape', 'export the model with only the output you need');
  }
  const roles = new Set<keyof RoleOutputs>();
  if (info.mlm) roles.add('mlm');
  if (info.classifierLabels) roles.add('classifier');
  const names = enc.outputNames;
  const roleNames = enc.inputRoles;
  // hidden / pooled appear when the graph outputs them: learn it from a one-token run's shapes
  const probe = await enc.run({ [roleNames.ids]: { data: new Int32Array([0]), dims: [1, 1] } });
  for (const n of names) {
    const r = roleOf(probe[n]);
    if (r) roles.add(r);
  }
  return {
    engine: 'native', maxPositions: info.maxPositions, vocab: info.vocab, hidden,
    typeVocab: roleNames.tokenTypes ? 2 : 0,
    labels: info.classifierLabels, roles,
    async run(b) {
      const feeds: Record<string, { data: Int32Array; dims: number[] }> = { [roleNames.ids]: { data: b.ids, dims: [b.batch, b.seq] } };
      if (roleNames.mask) feeds[roleNames.mask] = { data: b.mask, dims: [b.batch, b.seq] };
      if (roleNames.tokenTypes) feeds[roleNames.tokenTypes] = { data: b.types, dims: [b.batch, b.seq] };
      const out = await enc.run(feeds);
      const r: RoleOutputs = {};
      for (const n of names) {
        const role = roleOf(out[n]);
        if (role && role !== 'start' && role !== 'end') r[role] = out[n].data;
      }
      return r;
    },
    close: () => enc.close(),
  };
}
