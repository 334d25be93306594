/**
 * Dead-code removal after a rewrite: nodes nothing needs, initializers nothing reads, value_info of
 * tensors that no longer exist.
 */
import type { GraphProto, NodeProto } from '../onnx/types.js';

export function removeDeadCode(graph: GraphProto): { nodes: number; initializers: number } {
  const live = new Set(graph.output.map((o) => o.name ?? ''));
  const keep: NodeProto[] = [];
  for (let i = graph.node.length - 1; i >= 0; i--) {
    const n = graph.node[i];
    if (n.output.some((o) => live.has(o))) {
      keep.push(n);
      for (const inp of n.input) if (inp) live.add(inp);
    }
  }
  // nodes may be out of topological order in some exports: repeat until stable
  let changed = true;
  const kept = new Set(keep);
  while (changed) {
    changed = false;
    for (const n of graph.node) {
      if (kept.has(n) || !n.output.some((o) => live.has(o))) continue;
      kept.add(n);
      for (const inp of n.input) if (inp) live.add(inp);
      changed = true;
    }
  }
  const before = graph.node.length;
  graph.node = graph.node.filter((n) => kept.has(n));
  const inits = graph.initializer.length;
  const inputNames = new Set(graph.input.map((i) => i.name ?? ''));
  graph.initializer = graph.initializer.filter((t) => live.has(t.name ?? '') || inputNames.has(t.name ?? ''));
  const existing = new Set<string>([...graph.node.flatMap((n) => n.output), ...graph.input.map((i) => i.name ?? ''), ...graph.initializer.map((t) => t.name ?? '')]);
  graph.valueInfo = graph.valueInfo.filter((v) => existing.has(v.name ?? ''));
  return { nodes: before - graph.node.length, initializers: inits - graph.initializer.length };
}
