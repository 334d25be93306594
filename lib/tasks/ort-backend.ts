/**
 * The onnxruntime-node fallback, used only when asked (`engine: 'onnxruntime'`, `--engine onnxruntime`):
 * for models the native engine refuses (a QA head, an unusual export). onnxruntime-node is not a
 * dependency of this package; it must be installed beside it. Roles come from the recognised BERT
 * structure when there is one, else from the names transformers exports use (input_ids, attention_mask,
 * token_type_ids; start_logits and end_logits).
 */
import { BortError } from '../errors.js';
import { loadModel } from '../onnx/io.js';
import { recognize } from '../bert/recognize.js';
import { longestSequence } from '../bert/positions.js';
import { taskRoles, type Backend, type RoleOutputs } from './backend.js';
import { engineOutputs } from '../runtime/spec.js';

type Ort = typeof import('onnxruntime-node');

function loadOrt(): Ort {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('onnxruntime-node') as Ort;
  } catch {
    throw new BortError('onnxruntime-node is not installed', 'npm install onnxruntime-node beside bort-compress, or use the native engine');
  }
}

export async function ortBackend(file: string, opts: { threads?: number; maxPositions?: number } = {}): Promise<Backend> {
  const ort = loadOrt();
  let known: ReturnType<typeof recognize> | undefined;
  try {
    known = recognize(loadModel(file).model);
  } catch (e) {
    if (!(e instanceof BortError)) throw e;
  }
  const session = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: 'all', ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
  });
  const inputs = session.inputNames;
  const ids = known?.inputs.ids ?? inputs.find((n) => /input_ids|ids/i.test(n)) ?? inputs[0];
  const mask = known ? known.inputs.mask : inputs.find((n) => /mask/i.test(n));
  const types = known ? known.inputs.tokenTypes : inputs.find((n) => /type/i.test(n));
  const roleByName = known ? taskRoles(engineOutputs(known)) : new Map<string, keyof RoleOutputs>();
  for (const n of session.outputNames) {
    if (roleByName.has(n)) continue;
    if (/start/i.test(n)) roleByName.set(n, 'start');
    else if (/end/i.test(n)) roleByName.set(n, 'end');
  }
  const int32 = new Set(session.inputMetadata.filter((m) => m.isTensor && m.type === 'int32').map((m) => m.name));
  const roles = new Set(roleByName.values());
  if (!known && session.outputNames.length === 1 && !roles.size) {
    roles.add('start');
    roles.add('end');
  }
  const hidden = known?.arch.hidden ?? 0;
  return {
    engine: 'onnxruntime',
    maxPositions: known ? longestSequence(known) : opts.maxPositions ?? 512,
    fixedLength: known?.inputs.fixedLength,
    vocab: known?.vocab ?? 0,
    hidden,
    typeVocab: types ? known?.typeVocab ?? 2 : 0,
    labels: known?.classifiers[0]?.linear.outDim,
    roles,
    async run(b) {
      // each input as the type the model declares (TensorFlow exports take int32)
      const t = (name: string, data: Int32Array) => (int32.has(name)
        ? new ort.Tensor('int32', data, [b.batch, b.seq])
        : new ort.Tensor('int64', BigInt64Array.from(data, (v) => BigInt(v)), [b.batch, b.seq]));
      const feeds: Record<string, InstanceType<Ort['Tensor']>> = { [ids]: t(ids, b.ids) };
      if (mask) feeds[mask] = t(mask, b.mask);
      if (types) feeds[types] = t(types, b.types);
      const out = await session.run(feeds);
      const r: RoleOutputs = {};
      for (const [name, role] of roleByName) {
        const v = out[name];
        if (v) r[role] = v.data as Float32Array;
      }
      // a QA head exported as one [batch, seq, 2] output
      if (!r.start && session.outputNames.length === 1 && !known) {
        const v = out[session.outputNames[0]];
        if (v.dims.length === 3 && v.dims[2] === 2) {
          const d = v.data as Float32Array;
          r.start = new Float32Array(d.length / 2);
          r.end = new Float32Array(d.length / 2);
          for (let i = 0; i < r.start.length; i++) {
            r.start[i] = d[2 * i];
            r.end[i] = d[2 * i + 1];
          }
        }
      }
      return r;
    },
    close: () => session.release(),
  };
}
