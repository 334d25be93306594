/**
 * Slicing initializers: the selection for each view weight is recorded once, checked for consistency
 * when several roles share a tensor (a decoder tied to the word table), then applied in one pass to
 * the tensors the file holds — a view weight that is a block of a fused tensor (Q, K and V in one
 * [H, 3W] weight) slices its block, and float16 tensors are sliced as float16.
 */
import { BortError, quoteName } from '../errors.js';
import { floatData, tensorDims } from '../onnx/tensor.js';
import { float16BitsOf } from '../onnx/float16.js';
import { DataType, type GraphProto } from '../onnx/types.js';
import type { GraphView } from '../bert/normalize/view.js';

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

  get(name: string): Selection | undefined {
    return this.sel.get(name);
  }

  entries(): [string, Selection][] {
    return [...this.sel.entries()];
  }
}

type Values = Float32Array | Uint16Array;

/** A new array holding `data` ([dims]) restricted to `selection`; `name` is for messages. */
export function sliceValues<T extends Values>(data: T, dims: number[], selection: Selection, name = 'weight'): { data: T; dims: number[] } {
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
    const out = new (data.constructor as new (n: number) => T)(keep.length);
    for (let i = 0; i < keep.length; i++) out[i] = data[keep[i]];
    return { data: out, dims: [keep.length] };
  }
  const [rows, cols] = dims;
  const keepRows = selection[0];
  const keepCols = selection[1];
  const nr = keepRows ? keepRows.length : rows;
  const nc = keepCols ? keepCols.length : cols;
  const out = new (data.constructor as new (n: number) => T)(nr * nc);
  for (let r = 0; r < nr; r++) {
    const src = (keepRows ? keepRows[r] : r) * cols;
    const dst = r * nc;
    if (!keepCols) out.set(data.subarray(src, src + cols), dst);
    else for (let c = 0; c < nc; c++) out[dst + c] = data[src + keepCols[c]];
  }
  return { data: out, dims: [nr, nc] };
}

/** The selection on the file's tensor that the selections of its view weights (whole, or blocks of it) make. */
function fileSelection(view: GraphView, tensor: string, dims: number[], parts: { name: string; selection: Selection }[]): Selection {
  const whole = parts.filter((p) => !view.weightSource(p.name).block);
  if (whole.length) return whole[0].selection;
  const axis = view.weightSource(parts[0].name).block!.axis;
  const out: Selection = dims.map(() => null);
  // every other axis: one selection for all blocks
  for (let a = 0; a < dims.length; a++) {
    if (a === axis) continue;
    const first = parts[0].selection[a];
    for (const p of parts) {
      const s = p.selection[a];
      if ((s === null) !== (first === null) || (s && first && (s.length !== first.length || s.some((v, i) => v !== first[i])))) {
        throw new BortError(`the blocks of ${quoteName(tensor)} need different slices`, 'this fused weight cannot be sliced consistently; please report the model');
      }
    }
    out[a] = first;
  }
  // the block axis: each block's kept indices, in the tensor's order (a block not sliced keeps all)
  const blocks = [...view.weights.entries()].filter(([, w]) => w.tensor === tensor && w.block).sort((x, y) => x[1].block!.offset - y[1].block!.offset);
  const chosen = new Map(parts.map((p) => [p.name, p.selection[axis]]));
  const keep: number[] = [];
  let changed = false;
  for (const [name, w] of blocks) {
    const { offset, size } = w.block!;
    const sel = chosen.get(name) ?? null;
    if (sel) changed = true;
    for (const i of sel ?? Array.from({ length: size }, (_, k) => k)) keep.push(offset + i);
  }
  if (changed) out[axis] = keep;
  return out;
}

/** Applies every recorded selection to the file's initializers (`graph`), in place. */
export function applySlices(view: GraphView, graph: GraphProto, slices: SliceSet): void {
  const byTensor = new Map<string, { name: string; selection: Selection }[]>();
  for (const [name, selection] of slices.entries()) {
    if (!view.index.weight(name)) {
      throw new BortError(`weight ${quoteName(name)} is not a float initializer`,
        'bort-compress can only slice weights stored as float initializers; export the model with constants as initializers');
    }
    const tensor = view.weightSource(name).tensor;
    const list = byTensor.get(tensor) ?? [];
    list.push({ name, selection });
    byTensor.set(tensor, list);
  }
  for (const [tensor, parts] of byTensor) {
    const t = graph.initializer.find((x) => x.name === tensor);
    if (!t) throw new BortError(`weight ${quoteName(tensor)} is not an initializer of the file`, 'the model file changed while it was read; run again');
    // a view weight may read the file's tensor without its leading axes of size 1 ([1, L, H] as [L, H])
    const ones = Math.max(0, ...parts.map((p) => view.weightSource(p.name).leadingOnes ?? 0));
    const dims = tensorDims(t).slice(ones);
    const selection = fileSelection(view, tensor, dims, parts);
    if (selection.every((s) => s === null)) continue;
    const lead = new Array<number>(ones).fill(1);
    if (t.dataType === DataType.FLOAT16) {
      const bits = t.rawData && t.rawData.byteLength ? float16BitsOf(t.rawData) : Uint16Array.from(t.int32Data, Number);
      const r = sliceValues(bits, dims, selection, tensor);
      t.dims = [...lead, ...r.dims];
      t.rawData = new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength);
      t.int32Data = [];
    } else {
      const r = sliceValues(floatData(t), dims, selection, tensor);
      t.dims = [...lead, ...r.dims];
      t.rawData = new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength);
      t.floatData = [];
    }
  }
}
