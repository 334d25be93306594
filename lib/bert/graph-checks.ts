/**
 * Checks that a graph is well formed before recognition trusts its data flow: every tensor has one
 * definition (one producing node, or an initializer, or a graph input), every node input is defined,
 * and the nodes form no cycle. onnxruntime refuses graphs that break these rules; recognition would
 * otherwise read one of two definitions (a Q projection computed with the K weight) or walk in circles.
 */
import type { GraphProto } from '../onnx/types.js';
import { BortError, quoteName } from '../errors.js';

const INVALID = 'the file is not a valid ONNX model; export it again';

export function checkGraph(graph: GraphProto): void {
  const inputs = new Set<string>();
  for (const i of graph.input) {
    const name = i.name ?? '';
    if (inputs.has(name)) throw new BortError(`the graph declares the input ${quoteName(name)} twice`, INVALID);
    inputs.add(name);
  }
  const initializers = new Set<string>();
  for (const t of graph.initializer) {
    const name = t.name ?? '';
    if (initializers.has(name)) throw new BortError(`the graph has two initializers named ${quoteName(name)}`, INVALID);
    initializers.add(name);
  }
  // tensor → index of the node that writes it
  const producer = new Map<string, number>();
  graph.node.forEach((n, k) => {
    for (const o of n.output) {
      if (!o) continue;
      if (producer.has(o)) throw new BortError(`two nodes write the tensor ${quoteName(o)}`, INVALID);
      if (initializers.has(o)) throw new BortError(`the tensor ${quoteName(o)} is both an initializer and the output of node ${quoteName(n.name ?? n.opType)}`, INVALID);
      if (inputs.has(o)) throw new BortError(`the tensor ${quoteName(o)} is both a graph input and the output of node ${quoteName(n.name ?? n.opType)}`, INVALID);
      producer.set(o, k);
    }
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
          throw new BortError(`node ${quoteName(n.name ?? n.opType)} reads ${quoteName(i)}, which no node, initializer or graph input defines`, INVALID);
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
    throw new BortError(`the graph has a cycle through ${quoteName(waitingInput(k))}`, INVALID);
  }
}
