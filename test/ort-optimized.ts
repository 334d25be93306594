/**
 * What onnxruntime itself saves when asked to (`optimizedModelFilePath`): the graph after its own graph
 * optimizations at a level, as a user who ships "model.opt.onnx" has it. Used to give the reader files
 * with onnxruntime's fused operators without keeping such files in the repository.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../lib/onnx/io.js';
import { tmpDir } from './helpers.js';

export type OrtLevel = 'basic' | 'extended' | 'all';

/** Writes `src` as onnxruntime optimises it at `level` into a fresh temporary folder; returns the path. */
export async function ortOptimized(src: string, level: OrtLevel): Promise<string> {
  const out = path.join(tmpDir('bort-ortopt-'), `${path.basename(src, '.onnx')}.${level}.onnx`);
  const session = await ort.InferenceSession.create(src, { graphOptimizationLevel: level, optimizedModelFilePath: out, logSeverityLevel: 3 });
  await session.release();
  return out;
}

/** Node counts by operator, keyed 'Op' for the default domain and 'domain.Op' otherwise. */
export function opCounts(file: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of loadModel(file).model.graph!.node) {
    const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType!;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
