/**
 * The recogniser's view of a model file. Normalising passes (one file per exporter quirk, in this
 * folder) replace nodes the recogniser does not read — onnxruntime's fused operators, TensorFlow's
 * Reshape → MatMul → Reshape, half precision — by stand-ins in the form it does read. Only this view
 * changes; the file's own graph is never touched by a pass. What the rewrite needs to patch the file
 * itself is recorded beside the view:
 *
 * - `weights`: which initializer of the file (and which block of it, for a fused QKV weight) each
 *   view weight is, and its element type there (float32 or float16);
 * - `constants`: which node attribute an element of a view constant stands for (Attention's
 *   `num_heads` and `scale`, FusedMatMul's `alpha`), or that it follows from other changes;
 * - `dimensions`: integer constants and attributes of the file that must equal a weight's width
 *   (TensorFlow's output reshape, Split sizes);
 * - `maskReading`: how onnxruntime's Attention reads the mask input, when it does;
 * - `unread`: fused nodes a pass could not present, and why (the recogniser's error names them).
 *
 * Nodes of the file appear in the view as themselves; a node whose inputs a pass re-points is a copy,
 * and `fileNode()` gives the file's node it stands for.
 */
import { GraphIndex } from '../../onnx/graph.js';
import { DataType, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from '../../onnx/types.js';
import { floatData, tensorDims } from '../../onnx/tensor.js';
import { float16BitsOf, float16ToFloat32 } from '../../onnx/float16.js';

/** Where a view weight's values are stored in the file. */
export interface WeightSource {
  /** The file's initializer. */
  tensor: string;
  /** Its element type in the file: DataType.FLOAT or DataType.FLOAT16. */
  dataType: number;
  /** Set when the view weight is a block of that tensor: `size` indices from `offset` along `axis`. */
  block?: { axis: number; offset: number; size: number };
  /** Leading axes of size 1 the file's tensor has and the view weight drops ([1, L, H] read as [L, H]). */
  leadingOnes?: number;
}

/** What one element of a view constant stands for in the file. */
export type ConstantSource =
  /** A node attribute (a scalar, or element `element` of a list attribute). `impliedDefault`: the attribute is absent and its default depends on the head size (Attention's scale). */
  | { kind: 'attribute'; node: NodeProto; name: string; type: 'int' | 'float'; element?: number; impliedDefault?: boolean }
  /** Nothing to patch: the file derives it from values the rewrite changes (Attention's head size). */
  | { kind: 'derived' };

/** An integer in the file that must equal a dimension of a view weight. */
export interface DimensionSite {
  /** A constant read by `node` at `inputIndex`, or a list attribute of `node`. */
  at: { node: NodeProto; inputIndex: number; constant: string } | { node: NodeProto; attribute: string };
  element: number;
  weight: string;
  axis: number;
}

/** How onnxruntime's Attention reads the mask: 'raw': a key attends where the mask is 1; 'lengths': the first (number of 1s) keys attend. */
export type MaskReading = 'raw' | 'lengths';

export class GraphView {
  /** The graph the recogniser reads. */
  readonly graph: GraphProto;
  readonly model: ModelProto;
  readonly weights = new Map<string, WeightSource>();
  readonly constants = new Map<string, Map<number, ConstantSource>>();
  readonly dimensions: DimensionSite[] = [];
  /** Graph inputs whose mask onnxruntime's Attention reads, and how. */
  readonly maskReading = new Map<string, MaskReading>();
  /** View float constants (initializers, Constant outputs, stand-ins for attributes) that the file holds in float16. */
  readonly halfConstants = new Set<string>();
  readonly unread: { node: NodeProto; reason: string }[] = [];
  /** True when the file stores its weights in float16. */
  halfPrecision = false;
  private readonly copies = new Map<NodeProto, NodeProto>();
  private readonly fileNodes: Set<NodeProto>;
  private readonly used: Set<string>;
  private cachedIndex: GraphIndex | undefined;

  constructor(readonly file: ModelProto) {
    const g = file.graph!;
    this.graph = { ...g, node: [...g.node], initializer: [...g.initializer] };
    this.model = { ...file, graph: this.graph };
    this.fileNodes = new Set(g.node);
    this.used = new Set([...g.node.flatMap((n) => [...n.input, ...n.output, n.name ?? '']), ...g.initializer.map((t) => t.name ?? ''), ...g.input.map((i) => i.name ?? '')]);
  }

  /** An index of the view as it is now (rebuilt after each change). */
  get index(): GraphIndex {
    this.cachedIndex ??= new GraphIndex(this.graph);
    return this.cachedIndex;
  }

  /** A tensor or node name used nowhere in the file or the view. */
  fresh(base: string): string {
    let name = `${base}#view`;
    for (let i = 1; this.used.has(name); i++) name = `${base}#view${i}`;
    this.used.add(name);
    return name;
  }

  /** The file's node that a view node is or stands for; undefined for nodes only the view has. */
  fileNode(n: NodeProto): NodeProto | undefined {
    if (this.copies.has(n)) return this.copies.get(n);
    return this.fileNodes.has(n) ? n : undefined;
  }

  /**
   * Replaces view nodes: each key by its list of nodes (empty: removed), in the key's place. New
   * nodes get unique names.
   */
  replace(replacements: Map<NodeProto, NodeProto[]>): void {
    if (!replacements.size) return;
    const out: NodeProto[] = [];
    for (const n of this.graph.node) {
      const r = replacements.get(n);
      if (!r) {
        out.push(n);
        continue;
      }
      for (const x of r) {
        if (!this.fileNode(x) && !x.name) x.name = this.fresh(n.name || n.opType || 'node');
        out.push(x);
      }
    }
    this.graph.node = out;
    this.cachedIndex = undefined;
  }

  /** A copy of view node `n` with some fields changed (inputs, attributes), standing for the same file node. */
  copy(n: NodeProto, changes: Partial<Pick<NodeProto, 'input' | 'attribute' | 'output'>>): NodeProto {
    const c: NodeProto = { ...n, ...changes };
    const original = this.fileNode(n);
    if (original) this.copies.set(c, original);
    return c;
  }

  /** Adds a view initializer (a weight block, a converted weight, a folded constant). */
  addInitializer(t: TensorProto): void {
    this.graph.initializer.push(t);
    this.used.add(t.name ?? '');
    this.cachedIndex = undefined;
  }

  /** Replaces the view initializer of the same name. */
  replaceInitializer(t: TensorProto): void {
    const k = this.graph.initializer.findIndex((x) => x.name === t.name);
    this.graph.initializer[k] = t;
    this.cachedIndex = undefined;
  }

  /** Where a view weight lives in the file (a file initializer of the same name, unless a pass said otherwise). */
  weightSource(name: string): WeightSource {
    return this.weights.get(name) ?? { tensor: name, dataType: this.file.graph!.initializer.find((t) => t.name === name)?.dataType ?? DataType.FLOAT };
  }

  /**
   * A view weight holding block [offset, offset + size) along `axis` of view weight `of` (2-D or 1-D),
   * its values read on first use.
   */
  addBlock(name: string, of: string, axis: number, offset: number, size: number): void {
    const whole = this.index.weight(of)!;
    const src = this.weightSource(of);
    if (src.block) throw new Error(`view weight ${of} is already a block`);
    const dims = [...whole.dims];
    const full = dims[axis];
    dims[axis] = size;
    this.weights.set(name, { tensor: src.tensor, dataType: src.dataType, block: { axis, offset, size } });
    const cols = whole.dims.length === 2 ? whole.dims[1] : 1;
    this.addInitializer(lazyFloatTensor(name, dims, () => {
      const data = floatData(whole.tensor);
      const out = new Float32Array(dims.reduce((a, b) => a * b, 1));
      if (whole.dims.length === 1) out.set(data.subarray(offset, offset + size));
      else if (axis === 0) out.set(data.subarray(offset * cols, (offset + size) * cols));
      else for (let r = 0; r < whole.dims[0]; r++) out.set(data.subarray(r * full + offset, r * full + offset + size), r * size);
      return out;
    }));
  }

  /** A view weight holding the values of view weight `of` without its leading axes of size 1. */
  addSqueezed(name: string, of: string): void {
    const whole = this.index.weight(of)!;
    const src = this.weightSource(of);
    if (src.block || src.leadingOnes) throw new Error(`view weight ${of} is already a part`);
    let ones = 0;
    while (ones < whole.dims.length - 1 && whole.dims[ones] === 1) ones++;
    this.weights.set(name, { tensor: src.tensor, dataType: src.dataType, leadingOnes: ones });
    this.addInitializer(lazyFloatTensor(name, whole.dims.slice(ones), () => floatData(whole.tensor)));
  }

  /** Records what element `element` of view constant `name` stands for. */
  setConstantSource(name: string, element: number, source: ConstantSource): void {
    let m = this.constants.get(name);
    if (!m) this.constants.set(name, (m = new Map()));
    m.set(element, source);
  }

  constantSource(name: string, element: number): ConstantSource | undefined {
    return this.constants.get(name)?.get(element);
  }
}

/** A float32 tensor whose values are computed on first read of its raw data. */
export function lazyFloatTensor(name: string, dims: number[], values: () => Float32Array): TensorProto {
  const t: TensorProto = {
    name, dims, dataType: DataType.FLOAT, floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [],
    stringData: [], externalData: [], metadataProps: [],
  };
  let cached: Uint8Array | undefined;
  Object.defineProperty(t, 'rawData', {
    enumerable: true,
    get: () => {
      if (!cached) {
        const v = values();
        cached = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      }
      return cached;
    },
  });
  return t;
}

/** A float16 tensor's values as float32 (exact), read on first use. */
export function decodedHalfTensor(t: TensorProto): TensorProto {
  const dims = tensorDims(t);
  return lazyFloatTensor(t.name ?? '', dims, () => {
    if (t.rawData && t.rawData.byteLength > 0) return float16ToFloat32(float16BitsOf(t.rawData));
    // typed storage: the bits sit in int32_data
    return float16ToFloat32(Array.from(t.int32Data, Number));
  });
}
