/**
 * Applies an extraction plan to a recognised model's graph, in place: drops layers and rewires the
 * residual stream, slices every weight along the kept channels, patches the constants that carry the
 * head count, head size and attention width (and the score scale when asked), removes dead parts and
 * fixes declared shapes. Inputs and outputs keep their names, types and dynamic axes.
 *
 * Recognition names parts of its view of the graph (lib/bert/normalize/); every edit here goes to the
 * file's own graph: a weight that is a block of a fused tensor slices that tensor, a view constant that
 * stands for an attribute (num_heads, scale, alpha) patches the attribute, the file's integer constants
 * that follow a weight's width (TensorFlow reshapes, Split sizes) follow it, and new float constants
 * take the file's float type (float16 models stay float16).
 */
import type { Attention, BertModel, Linear, LayerNorm } from '../bert/model.js';
import type { ConstantSource, GraphView } from '../bert/normalize/view.js';
import type { ExtractionPlan } from '../extract/plan.js';
import { BortError, quoteName } from '../errors.js';
import { GraphIndex, makeAttrFloat, makeAttrInt, makeNode } from '../onnx/graph.js';
import { DataType, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../onnx/types.js';
import { intValues, makeFloatTensor, makeInt64Tensor } from '../onnx/tensor.js';
import { float16Bytes } from '../onnx/float16.js';
import { checkPlan } from './check-plan.js';
import { removeDeadCode } from './prune.js';
import { SliceSet, applySlices } from './slice.js';

function renameInputs(graph: GraphProto, from: string, to: string): void {
  for (const n of graph.node) for (let i = 0; i < n.input.length; i++) if (n.input[i] === from) n.input[i] = to;
}

class NameMaker {
  private readonly used: Set<string>;
  constructor(graph: GraphProto) {
    this.used = new Set([...graph.node.flatMap((n) => [...n.input, ...n.output]), ...graph.initializer.map((t) => t.name ?? '')]);
  }
  make(base: string): string {
    let name = `${base}_bort`;
    for (let i = 1; this.used.has(name); i++) name = `${base}_bort${i}`;
    this.used.add(name);
    return name;
  }
}

function linearSlices(s: SliceSet, l: Linear, inSel: number[] | null, outSel: number[] | null): void {
  s.set(l.weight, l.layout === 'in_out' ? [inSel, outSel] : [outSel, inSel]);
  if (l.bias) s.set(l.bias, [outSel]);
}

function lnSlices(s: SliceSet, ln: LayerNorm, sel: number[] | null): void {
  s.set(ln.gamma, [sel]);
  if (ln.beta) s.set(ln.beta, [sel]);
}

/** A copy of an integer constant with some elements replaced, in the constant's own data type. */
function patchedConstant(name: string, t: TensorProto, changes: Map<number, number>): TensorProto {
  const values = intValues(t).map((v, i) => (changes.has(i) ? changes.get(i)! : v));
  const dims = t.dims.map(Number);
  if (t.dataType === DataType.INT64) return makeInt64Tensor(name, dims, values);
  if (t.dataType === DataType.INT32) {
    const arr = Int32Array.from(values, Number);
    return { ...makeInt64Tensor(name, dims, []), dataType: DataType.INT32, rawData: new Uint8Array(arr.buffer) };
  }
  throw new BortError(`head-shape constant ${quoteName(name)} has data type ${t.dataType}, not int64 or int32`,
    'only integer head-shape constants can be changed; export the model with int64 Reshape shapes');
}

/** A float scalar initializer, in float16 when `half`. */
function floatScalar(name: string, value: number, half: boolean): TensorProto {
  const t = makeFloatTensor(name, [], Float32Array.of(value));
  return half ? { ...t, dataType: DataType.FLOAT16, rawData: float16Bytes([value]) } : t;
}

/** Sets a file node's attribute that a view constant stands for. */
function setAttribute(src: Extract<ConstantSource, { kind: 'attribute' }>, value: number): void {
  const { node, name } = src;
  const k = node.attribute.findIndex((a) => a.name === name);
  if (src.element !== undefined) {
    const ints = [...node.attribute[k].ints];
    ints[src.element] = value;
    node.attribute[k] = { ...node.attribute[k], ints };
    return;
  }
  const attr = src.type === 'int' ? makeAttrInt(name, value) : makeAttrFloat(name, value);
  if (k < 0) node.attribute.push(attr);
  else node.attribute[k] = attr;
}

/** The file's node a view node stands for (recognition's sites are on view nodes). */
function fileNodeOf(view: GraphView, n: NodeProto): NodeProto {
  const f = view.fileNode(n);
  if (!f) throw new Error(`internal error: node ${n.name} exists only in the recogniser's view and has no source in the file`);
  return f;
}

/**
 * Multiplies the attention scores of `a` by `factor`. With a scale constant in the graph (a Div or
 * Mul on the scores, Q or K), that constant is replaced (or the attribute it stands for set); without
 * one (the scale folded into the Q weights), a Mul by `factor` is inserted on Q's output, which scales
 * Q·Kᵀ by the same factor.
 */
function scaleScores(graph: GraphProto, view: GraphView, a: Attention, factor: number, names: NameMaker, constants: TensorProto[]): void {
  const name = names.make('attention_scale');
  const s = a.scaleSites[0];
  if (s) {
    const value = s.op === 'mul' ? s.value * factor : s.value / factor;
    const constant = s.node.input[s.inputIndex];
    const src = view.constantSource(constant, 0);
    if (src?.kind === 'attribute') {
      setAttribute(src, value);
      return;
    }
    constants.push(floatScalar(name, value, view.halfConstants.has(constant)));
    fileNodeOf(view, s.node).input[s.inputIndex] = name;
    return;
  }
  constants.push(floatScalar(name, factor, view.halfPrecision));
  const q = a.q.output;
  const scaled = names.make(`${q.replace(/[^A-Za-z0-9_.]/g, '_')}_scaled`);
  renameInputs(graph, q, scaled);
  const producer = graph.node.findIndex((n) => n.output.includes(q));
  graph.node.splice(producer + 1, 0, makeNode('Mul', [q, name], [scaled], scaled));
}

function fixShape(v: ValueInfoProto, role: string, oldHidden: number, newHidden: number): void {
  const dims = v.type?.tensorType?.shape?.dim;
  if (!dims || dims.length === 0) return;
  if (role === 'hidden' || role === 'pooled') {
    const last = dims[dims.length - 1];
    if (last.dimValue !== undefined && Number(last.dimValue) === oldHidden) last.dimValue = newHidden;
  }
}

/**
 * The file's integers that must equal a weight's width (view.dimensions): set to the width the
 * weight has after slicing. Constants (read from the file: the view may have dropped them with the
 * node they sized) get a patched copy per reading node input.
 */
function patchDimensions(view: GraphView, file: GraphIndex, slices: SliceSet, names: NameMaker, constants: TensorProto[]): void {
  const groups = new Map<NodeProto, Map<number, { constant: string; changes: Map<number, number> }>>();
  for (const d of view.dimensions) {
    const kept = slices.get(d.weight)?.[d.axis];
    if (!kept) continue;
    const node = fileNodeOf(view, d.at.node);
    if ('attribute' in d.at) {
      const k = node.attribute.findIndex((a) => a.name === (d.at as { attribute: string }).attribute);
      const ints = [...node.attribute[k].ints];
      ints[d.element] = kept.length;
      node.attribute[k] = { ...node.attribute[k], ints };
      continue;
    }
    const byInput = groups.get(node) ?? new Map();
    groups.set(node, byInput);
    const g = byInput.get(d.at.inputIndex) ?? { constant: d.at.constant, changes: new Map<number, number>() };
    const before = g.changes.get(d.element);
    if (before !== undefined && before !== kept.length) {
      throw new BortError(`the constant ${quoteName(d.at.constant)} gives the width of weights that are sliced to ${before} and ${kept.length} values`,
        'this model shares one shape constant between layers of different widths; compress to equal hidden and attention widths');
    }
    g.changes.set(d.element, kept.length);
    byInput.set(d.at.inputIndex, g);
  }
  for (const [node, byInput] of groups) {
    for (const [inputIndex, { constant, changes }] of byInput) {
      const t = file.constant(constant)!;
      if ([...changes].every(([el, v]) => Number(intValues(t)[el]) === v)) continue;
      const name = names.make(constant.replace(/[^A-Za-z0-9_.]/g, '_'));
      constants.push(patchedConstant(name, t, changes));
      node.input[inputIndex] = name;
    }
  }
}

export interface RewriteStats {
  removedNodes: number;
  removedInitializers: number;
}

/**
 * Rewrites `m`'s graph (in place) to the sub-architecture `plan` describes. The plan is checked
 * against the model first (a RangeError names what does not fit).
 */
export function applyPlan(m: BertModel, plan: ExtractionPlan): RewriteStats {
  checkPlan(m, plan);
  const graph = m.model.graph!;
  const ix = m.index;
  const view = m.view;
  const file = new GraphIndex(graph);
  const names = new NameMaker(graph);
  const slices = new SliceSet();
  const hidden = plan.hidden.length === m.arch.hidden ? null : plan.hidden;

  // embeddings
  const e = m.embeddings;
  for (const lookup of [e.word, e.position, e.tokenType]) if (lookup) slices.set(lookup.table, [null, hidden]);
  lnSlices(slices, e.ln, hidden);

  // layers
  const newShapeConstants: TensorProto[] = [];
  plan.layers.forEach((lp) => {
    const layer = m.layers[lp.source];
    const a = layer.attention;
    const attn = lp.attention.length === m.attentionWidth && lp.attention.every((c, i) => c === i) ? null : lp.attention;
    linearSlices(slices, a.q, hidden, attn);
    linearSlices(slices, a.k, hidden, attn);
    linearSlices(slices, a.v, hidden, attn);
    linearSlices(slices, a.o, attn, hidden);
    lnSlices(slices, layer.ln1, hidden);
    const neurons = lp.neurons.length === m.arch.intermediate ? null : lp.neurons;
    linearSlices(slices, layer.ffn.in, hidden, neurons);
    linearSlices(slices, layer.ffn.out, neurons, hidden);
    lnSlices(slices, layer.ln2, hidden);

    // head count, head size, width constants: one patched copy per reading node input
    const value = { heads: plan.target.heads, headSize: plan.headSize, width: plan.target.heads * plan.headSize };
    const groups = new Map<NodeProto, Map<number, { site: (typeof a.shapeSites)[number]; changes: Map<number, number> }>>();
    a.shapeSites.forEach((site) => {
      const byInput = groups.get(site.node) ?? new Map();
      groups.set(site.node, byInput);
      const g = byInput.get(site.inputIndex) ?? { site, changes: new Map<number, number>() };
      g.changes.set(site.element, value[site.role]);
      byInput.set(site.inputIndex, g);
    });
    for (const { site, changes } of [...groups.values()].flatMap((byInput) => [...byInput.values()])) {
      const inFile = new Map<number, number>();
      for (const [el, v] of changes) {
        const src = view.constantSource(site.constant, el);
        if (src?.kind === 'attribute') setAttribute(src, v);
        else if (!src) inFile.set(el, v);
      }
      if ([...inFile].every(([el, v]) => intValues(ix.constant(site.constant)!)[el] === v)) continue;
      const name = names.make(site.constant.replace(/[^A-Za-z0-9_.]/g, '_'));
      newShapeConstants.push(patchedConstant(name, ix.constant(site.constant)!, inFile));
      fileNodeOf(view, site.node).input[site.inputIndex] = name;
    }
    // score scale: fold the change into the first scale constant, or scale Q where there is none; a
    // scale that is an operator's default for the head size is written out when the head size changes
    const implied = a.scaleSites.some((s) => {
      const src = view.constantSource(s.node.input[s.inputIndex], 0);
      return src?.kind === 'attribute' && src.impliedDefault;
    });
    if (Math.abs(lp.scoreScale - a.scoreScale) > 1e-12 * Math.abs(a.scoreScale) || (implied && plan.headSize !== m.headSize)) {
      scaleScores(graph, view, a, lp.scoreScale / a.scoreScale, names, newShapeConstants);
    }
  });

  // heads
  if (m.pooler) linearSlices(slices, m.pooler.dense, hidden, hidden);
  if (m.mlm) {
    linearSlices(slices, m.mlm.transform, hidden, hidden);
    lnSlices(slices, m.mlm.ln, hidden);
    linearSlices(slices, m.mlm.decoder, hidden, null);
  }
  for (const c of m.classifiers) linearSlices(slices, c.linear, hidden, null);

  // residual stream: each kept layer reads the previous kept layer's output
  let stream = e.output;
  for (const lp of plan.layers) {
    const layer = m.layers[lp.source];
    if (layer.input !== stream) renameInputs(graph, layer.input, stream);
    stream = layer.output;
  }
  const oldLast = m.layers[m.layers.length - 1].output;
  if (stream !== oldLast) {
    // the old final tensor may be a graph output: give its name to the new final tensor
    const oldProducer = file.producer.get(oldLast)!;
    oldProducer.output = oldProducer.output.map((o) => (o === oldLast ? `${oldLast}__dropped_by_bort` : o));
    const newProducer = file.producer.get(stream)!;
    newProducer.output = newProducer.output.map((o) => (o === stream ? oldLast : o));
    renameInputs(graph, stream, oldLast);
  }

  applySlices(view, graph, slices);
  patchDimensions(view, file, slices, names, newShapeConstants);
  graph.initializer.push(...newShapeConstants);
  const dead = removeDeadCode(graph);

  // declared shapes
  const roles = new Map(m.outputs.map((o) => [o.name, o.role]));
  for (const o of graph.output) fixShape(o, roles.get(o.name ?? '') ?? '', m.arch.hidden, plan.target.hidden);
  const changed = new Set([m.arch.hidden, m.arch.intermediate, m.arch.heads, m.headSize, m.attentionWidth, 3 * m.attentionWidth]);
  for (const v of graph.valueInfo) {
    const dims = v.type?.tensorType?.shape?.dim;
    if (dims && dims.some((d) => d.dimValue !== undefined && changed.has(Number(d.dimValue)))) {
      delete v.type!.tensorType!.shape;
    }
  }
  return { removedNodes: dead.nodes, removedInitializers: dead.initializers };
}
