/**
 * The main job as a library call: load a BERT ONNX model, plan an extraction to a target
 * architecture, rewrite the graph and save it. Returns the summary the CLI prints.
 *
 * The job (compress-job.ts) reads, recognises, rewrites and writes synchronously, seconds of work on a
 * large model, so `compress()` runs it on a worker thread and the caller's event loop keeps turning.
 * A BortError in the worker arrives as a BortError with the same message and `fix`; progress steps
 * arrive through `onProgress`. A custom `ImportanceScorer` object (functions cannot be sent to another
 * thread) makes the job run on the calling thread instead.
 */
import { runCompress, type CompressJobOptions, type CompressSummary } from './compress-job.js';
import { WORKER_LIMITS, workerEntry } from './worker/entry.js';
import { WorkerPool } from './worker/pool.js';
import type { ImportanceScorer } from './extract/scorer.js';
import { refitFile, refitProblem } from './extract/reconstruct.js';
import { recognize } from './bert/recognize.js';
import { loadModel } from './onnx/io.js';
import type { Arch } from './bert/model.js';
import { BortError } from './errors.js';

export { defaultOutput, type CompressSummary } from './compress-job.js';

export interface CompressOptions {
  /** Target architecture: an object or 'D,A,H,I'. */
  arch: Arch | string;
  /**
   * 'importance' (default) or 'first'; or a custom scorer (which runs the job on the calling thread;
   * an error it throws, a BortError included, rejects the call as it is). Anything else is refused.
   */
  strategy?: 'importance' | 'first' | ImportanceScorer;
  /**
   * Output path; defaults to IN with `.bort-D-A-H-I.onnx`. Must name a file: a path ending in a slash
   * is refused, as are the input model, its external data file, anything that is not a regular file
   * (a directory, /dev/null) and read-only files.
   */
  output?: string;
  /** Write weights to an external data file `OUTPUT.data` (always when the model passes 2 GB). */
  externalData?: boolean;
  /**
   * Attention-score scale when the head size changes, from the source's scale s: 'mean' (the default
   * when heads are merged into larger ones) s·d/d', so a merged head's logits are the mean of its
   * source heads'; 'keep' (the default when heads shrink) s unchanged; 'rescale' 1/sqrt(d').
   */
  attentionScale?: 'keep' | 'rescale' | 'mean';
  /** Progress callback: the name of each step as it starts. */
  onProgress?: (step: string) => void;
  /**
   * Least-squares refit after the extraction (lib/extract/reconstruct.ts; `--strategy data` turns it on):
   * W_O and W_out refitted on these token sequences (all one length, no padding) so that each layer
   * matches the source's. Skipped with a note when the extracted model cannot be refitted (hidden size
   * changed, int8 or float16 weights).
   */
  refit?: { sequences: Int32Array[]; ridge?: number; threads?: number };
}

/** The job and its options, as sent to compress-worker.ts. */
export interface CompressRequest {
  input: string;
  options: CompressJobOptions;
}

/** How long a finished worker waits for another job before it is stopped. */
const IDLE_MS = 5_000;
let pool: WorkerPool<CompressRequest, CompressSummary> | undefined;

/** The workers that run jobs, one job each at a time; undefined when none can be started here. */
function compressPool(): WorkerPool<CompressRequest, CompressSummary> | undefined {
  if (pool) return pool;
  const entry = workerEntry(__dirname, 'compress-worker');
  if (!entry) return undefined; // TypeScript sources without tsx: run on this thread
  pool = new WorkerPool<CompressRequest, CompressSummary>({
    entry,
    resourceLimits: WORKER_LIMITS,
    maxWorkers: Infinity,
    idleMs: IDLE_MS,
    failure: (why, { input }) => {
      if (why.kind === 'exit') return new Error(`the compress worker stopped (exit code ${why.code}) before it finished`);
      if (why.kind === 'out-of-memory') {
        return new BortError(`ran out of memory while compressing ${input}`,
          'the model needs more memory than Node allows here (raise it with NODE_OPTIONS=--max-old-space-size=MB), or the file is damaged');
      }
      return why.error;
    },
  });
  return pool;
}

export async function compress(input: string, options: CompressOptions): Promise<CompressSummary> {
  const { onProgress, refit, ...job } = options;
  const progress = onProgress ?? (() => {});
  const workers = typeof job.strategy === 'object' && job.strategy !== null ? undefined : compressPool();
  const summary = workers ? await workers.request({ input, options: job }, progress) : runCompress(input, job, progress);
  if (refit) await refitSummary(input, summary, refit, options.externalData, progress);
  return summary;
}

/** Refits the extracted model in `summary.output` and notes what was done (or why not) in its plan notes. */
export async function refitSummary(input: string, summary: CompressSummary, refit: NonNullable<CompressOptions['refit']>, externalData: boolean | undefined, progress: (step: string) => void): Promise<void> {
  if (!refit.sequences?.length) throw new BortError('the refit needs calibration sequences', 'give refit.sequences (token ids, all one length)');
  const problem = refitProblem(recognize(loadModel(input).model), recognize(loadModel(summary.output).model));
  if (problem) {
    summary.plan.notes.push(`refit skipped: ${problem}`);
    return;
  }
  progress('refitting W_O and W_out by least squares on the calibration text');
  const t0 = Date.now();
  const r = await refitFile(input, summary.output, summary.plan.layers, refit.sequences, { ridge: refit.ridge, threads: refit.threads, externalData, onProgress: progress });
  const parts = r.fits.map((f) => `${f.layer}:${f.part === 'attention' ? 'W_O' : f.part === 'ffn' ? 'W_out' : 'W_out→depth'}`);
  summary.plan.notes.push(r.fits.length
    ? `refit by least squares on ${r.tokens} calibration tokens (${parts.join(', ')}); output MSE ${mean(r.fits.map((f) => f.before)).toExponential(2)} → ${mean(r.fits.map((f) => f.after)).toExponential(2)}`
    : 'refit: nothing to refit (every head and neuron kept, no layers removed)');
  summary.seconds += (Date.now() - t0) / 1000;
}

function mean(a: number[]): number {
  return a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
}
