/**
 * Slicing initializers: the selection for each tensor is recorded once, checked for consistency when
 * several roles share a tensor (a decoder tied to the word table), then applied in one pass.
 */
import { BortError, quoteName } from '../errors.js';
import { floatData } from '../onnx/tensor.js';
import type { GraphIndex } from '../onnx/graph.js';

/** Kept indices along each axis of a tensor; null keeps the axis whole. */
export type Selection = (number[] | null)[];

function same(a: number[] | null, b: number[] | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export class SliceSet {
  private readonly sel = new Map<string, Selection>();

  set(name: string, selection: Selection): void {
    const prev = this.sel.get(name);
    if (prev && !prev.every((p, i) => same(p, selection[i]))) {
      throw new BortError(`initializer ${quoteName(name)} plays two roles that need different slices`, 'this weight sharing is not supported; please report the model');
    }
    this.sel.set(name, selection);
  }

  entries(): [string, Selection][] {
    return [...this.sel.entries()];
  }
}

/** A new float32 array holding `data` ([dims]) restricted to `selection`; `name` is for messages. */
export function sliceFloat(data: Float32Array, dims: number[], selection: Selection, name = 'weight'): { data: Float32Array; dims: number[] } {
  if (dims.length !== selection.length || dims.length < 1 || dims.length > 2) {
    throw new BortError(`initializer ${quoteName(name)} has dims [${dims.join(', ')}] where a ${selection.length}-D weight was expected`,
      'this weight layout is not supported; please report the exporter that wrote the model');
  }
  selection.forEach((keep, axis) => {
    if (keep && keep.some((i) => !Number.isInteger(i) || i < 0 || i >= dims[axis])) {
      throw new RangeError(`a kept index of initializer ${quoteName(name)} is outside its axis ${axis} of size ${dims[axis]}`);
    }
  });
  if (dims.length === 1) {
    const keep = selection[0];
    if (!keep) return { data, dims };
    const out = new Float32Array(keep.length);
    for (let i = 0; i < keep.length; i++) out[i] = data[keep[i]];
    return { data: out, dims: [keep.length] };
  }
  const [rows, cols] = dims;
  const keepRows = selection[0];
  const keepCols = selection[1];
  const nr = keepRows ? keepRows.length : rows;
  const nc = keepCols ? keepCols.length : cols;
  const out = new Float32Array(nr * nc);
  for (let r = 0; r < nr; r++) {
    const src = (keepRows ? keepRows[r] : r) * cols;
    const dst = r * nc;
    if (!keepCols) out.set(data.subarray(src, src + cols), dst);
    else for (let c = 0; c < nc; c++) out[dst + c] = data[src + keepCols[c]];
  }
  return { data: out, dims: [nr, nc] };
}

/** Applies every recorded selection to the graph's initializers, in place. */
export function applySlices(ix: GraphIndex, slices: SliceSet): void {
  for (const [name, selection] of slices.entries()) {
    const w = ix.weight(name);
    if (!w) {
      throw new BortError(`weight ${quoteName(name)} is not a float initializer`,
        'bort-compress can only slice weights stored as float32 initializers; export the model with constants as initializers');
    }
    if (selection.every((s) => s === null)) continue;
    const { data, dims } = sliceFloat(floatData(w.tensor), w.dims, selection, name);
    w.tensor.dims = dims;
    w.tensor.rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    w.tensor.floatData = [];
  }
}
