/**
 * Worker-thread side of `prepareModel` (prepare.ts). For each request `{ id, file }`: reads the model
 * file, recognises it and builds the engine's view of it, then answers `{ id, ok: { spec, arch } }`
 * with the weights' buffers transferred (not copied), or `{ id, error: { name, message, fix? } }`.
 */
import { parentPort } from 'node:worker_threads';
import { loadModel } from '../onnx/io.js';
import { recognize } from '../bert/recognize.js';
import { engineSpec } from './spec.js';

function describe(e: unknown): { name: string; message: string; fix?: string } {
  if (e instanceof Error) {
    const fix = (e as { fix?: unknown }).fix;
    return { name: e.name, message: e.message, ...(typeof fix === 'string' ? { fix } : {}) };
  }
  return { name: 'Error', message: String(e) };
}

function prepare(id: number, file: string): void {
  const port = parentPort!;
  let answer;
  try {
    const m = recognize(loadModel(file).model);
    answer = { id, ok: { spec: engineSpec(m), arch: { ...m.arch } } };
  } catch (e) {
    port.postMessage({ id, error: describe(e) });
    return;
  }
  const buffers = [...new Set(Object.values(answer.ok.spec.weights).map((a) => a.buffer))].filter(
    (b): b is ArrayBuffer => b instanceof ArrayBuffer,
  );
  try {
    port.postMessage(answer, buffers);
  } catch {
    // a buffer that cannot be transferred (a pooled Buffer's memory): copy instead
    port.postMessage(answer);
  }
}

parentPort!.on('message', (m: { id: number; file: string }) => prepare(m.id, m.file));
