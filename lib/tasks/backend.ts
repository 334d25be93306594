/**
 * What a text task needs from a model: its input roles, sizes, and one run on a padded batch of ids
 * whose outputs are named by role (hidden states, pooled output, masked-LM logits, classifier logits,
 * QA start/end logits). The native `Encoder` is the default; onnxruntime-node is used only when asked
 * (lib/tasks/ort-backend.ts).
 */
import { Encoder } from '../runtime/encoder.js';
import type { EngineOutput } from '../runtime/spec.js';

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
  /** The most tokens a sequence can have (at most the declared length of a fixed-length model). */
  readonly maxPositions: number;
  /** Every batch is padded to exactly this length: the model's inputs declare it. */
  readonly fixedLength?: number;
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

/**
 * The text-task role of each output the engine recognised: hidden states, pooled output, masked-LM
 * logits, sequence-classifier logits, and a QA head's start and end (per-token logits split into
 * exactly two columns). Other outputs (a token classifier's logits) play no task role.
 */
export function taskRoles(outputs: readonly { name: string; from: EngineOutput; column?: number }[]): Map<string, keyof RoleOutputs> {
  const split = outputs.filter((o) => o.from === 'tok' && o.column !== undefined);
  const roles = new Map<string, keyof RoleOutputs>();
  for (const o of outputs) {
    const role = ({ hidden: 'hidden', pooled: 'pooled', mlm: 'mlm', cls: 'classifier' } as const)[o.from as 'hidden']
      ?? (split.length === 2 && o.column !== undefined ? (o.column === 0 ? 'start' : 'end') : undefined);
    if (role) roles.set(o.name, role);
  }
  return roles;
}

/** The native engine: each output's role is what recognition found it to be (Encoder.outputRoles). */
export async function nativeBackend(file: string, threads?: number): Promise<Backend> {
  const enc = await Encoder.load(file, threads ? { threads } : {});
  const info = enc.info;
  const hidden = enc.arch.hidden;
  const roleByName = taskRoles(enc.outputRoles);
  const roles = new Set(roleByName.values());
  const roleNames = enc.inputRoles;
  return {
    engine: 'native', maxPositions: Math.min(info.maxPositions, info.fixedLength ?? Infinity), fixedLength: info.fixedLength, vocab: info.vocab, hidden,
    typeVocab: enc.typeVocab,
    labels: info.classifierLabels, roles,
    async run(b) {
      const feeds: Record<string, { data: Int32Array; dims: number[] }> = { [roleNames.ids]: { data: b.ids, dims: [b.batch, b.seq] } };
      if (roleNames.mask) feeds[roleNames.mask] = { data: b.mask, dims: [b.batch, b.seq] };
      if (roleNames.tokenTypes) feeds[roleNames.tokenTypes] = { data: b.types, dims: [b.batch, b.seq] };
      const out = await enc.run(feeds);
      const r: RoleOutputs = {};
      for (const [n, role] of roleByName) r[role] = out[n].data;
      return r;
    },
    close: () => enc.close(),
  };
}
