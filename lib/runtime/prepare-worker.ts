/**
 * Worker-thread side of `prepareModel` (prepare.ts). For each request (a file's absolute path): reads
 * the model file, recognises it and builds the engine's view of it, and answers `{ spec, arch }` with
 * the weights' buffers transferred (not copied).
 */
import { loadModel } from '../onnx/io.js';
import { recognize } from '../bert/recognize.js';
import { serveRequests } from '../worker/serve.js';
import { engineSpec } from './spec.js';
import type { PreparedModel } from './prepare.js';

serveRequests(
  (file: string): PreparedModel => {
    const m = recognize(loadModel(file).model);
    return { spec: engineSpec(m), arch: { ...m.arch } };
  },
  (p) => Object.values(p.spec.weights).map((a) => a.buffer).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer),
);
