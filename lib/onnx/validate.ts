/**
 * What makes a decoded ModelProto a model, checked before anything reads its tensors: an IR version and
 * an ai.onnx opset in the range onnxruntime loads, and one definition per name (a file concatenated
 * with itself decodes, by protobuf's merge rule, into a model with everything twice; two nodes writing
 * one tensor would make "the producer of a tensor" ambiguous).
 */
import { BortError, quoteName } from '../errors.js';
import type { GraphProto, Int64, ModelProto } from './types.js';

/**
 * IR versions read: 3 (the first with opset imports) to 13, the newest onnxruntime-node 1.30 loads
 * (it refuses 14 and above).
 */
export const IR_VERSIONS = { min: 3, max: 13 } as const;
/**
 * ai.onnx opsets read: 7 (the oldest onnxruntime guarantees) to 26, the newest onnxruntime-node 1.30
 * loads (it refuses 27 and above).
 */
export const AI_ONNX_OPSETS = { min: 7, max: 26 } as const;

const EXPORT_AGAIN = 'export the model again with a current exporter (e.g. torch.onnx.export, opset 14 to 17)';
const DAMAGED = 'the model file is damaged (a file concatenated with itself decodes this way); export it again';

function whole(v: Int64 | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : NaN;
}

function isAiOnnx(domain: string | undefined): boolean {
  return !domain || domain === 'ai.onnx';
}

/** Refuses what onnxruntime refuses at load time, with the supported range in the message. */
export function checkModel(model: ModelProto, source: string): void {
  const ir = whole(model.irVersion);
  if (ir === undefined || Number.isNaN(ir) || ir < IR_VERSIONS.min || ir > IR_VERSIONS.max) {
    throw new BortError(
      `${source} has ${ir === undefined ? 'no IR version' : `IR version ${String(model.irVersion)}`}; bort-compress reads IR versions ${IR_VERSIONS.min} to ${IR_VERSIONS.max} (those onnxruntime 1.30 loads)`,
      EXPORT_AGAIN);
  }
  const versions = new Map<string, number>();
  for (const o of model.opsetImport ?? []) {
    const domain = isAiOnnx(o.domain) ? 'ai.onnx' : o.domain!;
    const v = whole(o.version);
    if (v === undefined || Number.isNaN(v) || v < 1) {
      throw new BortError(`${source} imports opset ${quoteName(domain)} with version ${String(o.version)}`, 'the model file is damaged or not an ONNX model');
    }
    const prev = versions.get(domain);
    if (prev !== undefined && prev !== v) {
      throw new BortError(`${source} imports opset ${quoteName(domain)} twice, as versions ${prev} and ${v}`, 'the model file is damaged; export it again');
    }
    versions.set(domain, v);
  }
  const opset = versions.get('ai.onnx');
  if (opset === undefined) {
    throw new BortError(`${source} imports no ai.onnx opset; bort-compress reads opsets ${AI_ONNX_OPSETS.min} to ${AI_ONNX_OPSETS.max}`, EXPORT_AGAIN);
  }
  if (opset < AI_ONNX_OPSETS.min || opset > AI_ONNX_OPSETS.max) {
    throw new BortError(`${source} uses ai.onnx opset ${opset}; bort-compress reads opsets ${AI_ONNX_OPSETS.min} to ${AI_ONNX_OPSETS.max} (those onnxruntime 1.30 loads)`, EXPORT_AGAIN);
  }
  if (model.graph) checkGraph(model.graph, source);
}

/**
 * A graph's data flow is well formed: one definition per name (in it and in each of its subgraphs),
 * every node input defined, no cycle. onnxruntime refuses graphs that break these rules; recognition
 * would otherwise read one of two definitions (a Q projection computed with the K weight) or walk in
 * circles. `loadModel` checks every file; `recognize` checks models built in memory the same way.
 */
export function checkGraph(graph: GraphProto, source = 'the model'): void {
  checkDefinitions(graph, source, 'graph');
  checkDataFlow(graph, source);
}

/** One definition per name within a graph and each of its subgraphs. */
function checkDefinitions(graph: GraphProto, source: string, where: string): void {
  const initializers = new Set<string>();
  for (const t of graph.initializer ?? []) {
    const name = t.name ?? '';
    if (!name) throw new BortError(`${source}: an initializer of the ${where} has no name`, 'the model file is damaged; export it again');
    if (initializers.has(name)) throw new BortError(`${source}: initializer ${quoteName(name)} is defined twice in the ${where}`, DAMAGED);
    initializers.add(name);
  }
  const inputs = new Set<string>();
  for (const i of graph.input ?? []) {
    const name = i.name ?? '';
    if (inputs.has(name)) throw new BortError(`${source}: input ${quoteName(name)} is declared twice in the ${where}`, DAMAGED);
    inputs.add(name);
  }
  const producers = new Map<string, string>();
  for (const node of graph.node ?? []) {
    for (const out of node.output ?? []) {
      if (!out) continue; // an optional output left out
      const other = producers.get(out);
      if (other !== undefined) {
        throw new BortError(`${source}: tensor ${quoteName(out)} is written by two nodes (${quoteName(other)} and ${quoteName(node.name ?? '')}) in the ${where}`, DAMAGED);
      }
      if (inputs.has(out) || initializers.has(out)) {
        throw new BortError(`${source}: tensor ${quoteName(out)} is both ${inputs.has(out) ? 'an input' : 'an initializer'} and the output of node ${quoteName(node.name ?? '')} in the ${where}`, 'the model file is damaged; export it again');
      }
      producers.set(out, node.name ?? '');
    }
    for (const a of node.attribute ?? []) {
      const sub = `subgraph ${quoteName(a.name ?? '')} of node ${quoteName(node.name ?? '')}`;
      if (a.g) checkDefinitions(a.g, source, sub);
      for (const g of a.graphs ?? []) checkDefinitions(g, source, sub);
    }
  }
}

/** Every node input defined (by a node, an initializer or a graph input) and the nodes form no cycle. */
function checkDataFlow(graph: GraphProto, source: string): void {
  const initializers = new Set(graph.initializer.map((t) => t.name ?? ''));
  const inputs = new Set(graph.input.map((i) => i.name ?? ''));
  // tensor → index of the node that writes it (one each: checkDefinitions ran first)
  const producer = new Map<string, number>();
  graph.node.forEach((n, k) => {
    for (const o of n.output) if (o) producer.set(o, k);
  });
  // every input defined; count each node's inputs that other nodes produce (Kahn's algorithm)
  const waiting = new Int32Array(graph.node.length);
  const readers = new Map<number, number[]>();
  graph.node.forEach((n, k) => {
    const seen = new Set<number>();
    for (const i of n.input) {
      if (!i) continue;
      const p = producer.get(i);
      if (p === undefined) {
        if (!initializers.has(i) && !inputs.has(i)) {
          throw new BortError(`${source}: node ${quoteName(n.name ?? n.opType)} reads ${quoteName(i)}, which no node, initializer or graph input defines`, 'the file is not a valid ONNX model; export it again');
        }
        continue;
      }
      if (seen.has(p)) continue;
      seen.add(p);
      waiting[k]++;
      let list = readers.get(p);
      if (!list) readers.set(p, (list = []));
      list.push(k);
    }
  });
  const ready: number[] = [];
  waiting.forEach((w, k) => { if (w === 0) ready.push(k); });
  let done = 0;
  while (ready.length) {
    const k = ready.pop()!;
    done++;
    for (const r of readers.get(k) ?? []) if (--waiting[r] === 0) ready.push(r);
  }
  if (done < graph.node.length) {
    // every node left waiting reads a tensor that another waiting node writes; walking back along such
    // tensors must come round to a node already passed: the tensors from there on form the cycle
    const waitingInput = (k: number) => graph.node[k].input.find((i) => i && producer.has(i) && waiting[producer.get(i)!] > 0)!;
    let k = waiting.findIndex((w) => w > 0);
    const passed = new Set<number>();
    while (!passed.has(k)) {
      passed.add(k);
      k = producer.get(waitingInput(k))!;
    }
    throw new BortError(`${source}: the graph has a cycle through ${quoteName(waitingInput(k))}`, 'the file is not a valid ONNX model; export it again');
  }
}
