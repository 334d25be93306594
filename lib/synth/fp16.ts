/**
 * Half precision as onnxruntime's float16 converter writes it (onnxruntime.transformers float16.py,
 * convert_float_to_float16 with keep_io_types=True): every float tensor becomes FLOAT16 — initializers,
 * Constant values (clamped to ±65504, tiny magnitudes to ±5.96e-8), Cast(to=float) turned into
 * Cast(to=float16) — and a Cast back to float32 before each float graph output (named graph_output_cast_i).
 * Op types on the block list stay float32 with Casts around them ({node}_input_cast_i / _output_cast_i);
 * an initializer read only by blocked nodes stays float32. Casts are placed next to the node they serve,
 * so the graph stays topologically sorted.
 */
import { DataType, type GraphProto, type NodeProto, type TensorProto } from '../onnx/types.js';
import { makeAttrInt, makeNode } from '../onnx/graph.js';
import { floatData } from '../onnx/tensor.js';
import { toFloat16Bits } from '../onnx/float16.js';

export { toFloat16Bits };

/** The converter's DEFAULT_OP_BLOCK_LIST (ops it never converts). */
export const DEFAULT_FP16_BLOCK_LIST = [
  'ArrayFeatureExtractor', 'Binarizer', 'CastMap', 'CategoryMapper', 'DictVectorizer', 'FeatureVectorizer', 'Imputer',
  'LabelEncoder', 'LinearClassifier', 'LinearRegressor', 'Normalizer', 'OneHotEncoder', 'SVMClassifier', 'SVMRegressor',
  'Scaler', 'TreeEnsembleClassifier', 'TreeEnsembleRegressor', 'ZipMap', 'NonMaxSuppression', 'TopK', 'RoiAlign', 'Resize',
  'Range', 'CumSum', 'Min', 'Max', 'Upsample',
];

const MIN_POSITIVE = 5.96e-8;
const MAX_FINITE = 65504;

/** The converter's clamp: finite magnitudes into [5.96e-8, 65504]; 0, ±Infinity and NaN unchanged. */
function clampForFloat16(v: number): number {
  if (v > 0 && v < MIN_POSITIVE) return MIN_POSITIVE;
  if (v < 0 && v > -MIN_POSITIVE) return -MIN_POSITIVE;
  if (v > MAX_FINITE && v < Infinity) return MAX_FINITE;
  if (v < -MAX_FINITE && v > -Infinity) return -MAX_FINITE;
  return v;
}

/** The tensor converted in place to FLOAT16 raw data. */
function convertTensor(t: TensorProto): void {
  if (t.dataType !== DataType.FLOAT) return;
  const src = floatData(t);
  const half = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) half[i] = toFloat16Bits(clampForFloat16(src[i]));
  t.dataType = DataType.FLOAT16;
  t.rawData = new Uint8Array(half.buffer);
  t.floatData = [];
}

/** Element types of every tensor in one of our own graphs (enough rules for what synth writes). */
function elementTypes(graph: GraphProto): Map<string, number> {
  const types = new Map<string, number>();
  for (const i of graph.input) types.set(i.name!, i.type?.tensorType?.elemType ?? 0);
  for (const t of graph.initializer) types.set(t.name!, t.dataType ?? 0);
  const attrTensor = (n: NodeProto, name: string) => n.attribute.find((a) => a.name === name)?.t;
  for (const n of graph.node) {
    const first = n.input.map((i) => types.get(i)).find((t) => t !== undefined) ?? DataType.FLOAT;
    let out: number[];
    switch (n.opType) {
      case 'Constant': out = [attrTensor(n, 'value')!.dataType!]; break;
      case 'ConstantOfShape': out = [attrTensor(n, 'value')?.dataType ?? DataType.FLOAT]; break;
      case 'Shape': out = [DataType.INT64]; break;
      case 'Cast': out = [Number(n.attribute.find((a) => a.name === 'to')!.i)]; break;
      case 'Equal': case 'Not': case 'Less': case 'Greater': out = [DataType.BOOL]; break;
      case 'Where': out = [types.get(n.input[1]) ?? first]; break;
      case 'EmbedLayerNormalization': out = [types.get(n.input[2])!, DataType.INT32, types.get(n.input[2])!]; break;
      default: out = n.output.map(() => first);
    }
    n.output.forEach((o, i) => types.set(o, out[i] ?? first));
  }
  return types;
}

function castNode(input: string, output: string, name: string, to: number): NodeProto {
  return makeNode('Cast', [input], [output], name, [makeAttrInt('to', to)]);
}

/** Converts the graph in place. */
export function convertToFloat16(graph: GraphProto, blockList: string[] = []): void {
  const blocked = new Set([...DEFAULT_FP16_BLOCK_LIST, ...blockList]);
  const types = elementTypes(graph);
  const isFloat = (name: string) => types.get(name) === DataType.FLOAT;
  const isBlocked = (n: NodeProto) => blocked.has(n.opType ?? '');

  // keep_io_types: the graph's float outputs stay float32 through a Cast (graph inputs here are integers)
  const outputCasts: NodeProto[] = [];
  graph.output.forEach((o, i) => {
    if (o.type?.tensorType?.elemType !== DataType.FLOAT) return;
    const inner = `graph_output_cast_${i}`;
    for (const n of graph.node) {
      n.input = n.input.map((x) => (x === o.name ? inner : x));
      n.output = n.output.map((x) => (x === o.name ? inner : x));
    }
    types.set(inner, DataType.FLOAT);
    outputCasts.push(castNode(inner, o.name!, `graph_output_cast${i}`, DataType.FLOAT));
  });

  // initializers read by at least one converted node become float16; the rest stay float32
  const initializers = new Map(graph.initializer.map((t) => [t.name!, t]));
  const converted = new Set<string>();
  for (const n of graph.node) {
    if (isBlocked(n)) continue;
    for (const i of n.input) {
      const t = initializers.get(i);
      if (t && t.dataType === DataType.FLOAT) converted.add(i);
    }
  }
  for (const name of converted) convertTensor(initializers.get(name)!);

  const nodes: NodeProto[] = [];
  for (const n of graph.node) {
    if (!isBlocked(n)) {
      for (const a of n.attribute) {
        if (n.opType === 'Cast' && a.name === 'to' && Number(a.i) === DataType.FLOAT) a.i = DataType.FLOAT16;
        if (a.t) convertTensor(a.t);
        for (const t of a.tensors) convertTensor(t);
      }
      nodes.push(n);
      continue;
    }
    // a float16 tensor feeding a blocked node goes through Cast(to=float) first
    n.input = n.input.map((input, i) => {
      if (!input || !isFloat(input) || (initializers.has(input) && !converted.has(input))) return input;
      const cast = `${n.name}_input_cast_${i}`;
      nodes.push(castNode(input, cast, `${n.name}_input_cast${i}`, DataType.FLOAT));
      return cast;
    });
    nodes.push(n);
    n.output = n.output.map((output, i) => {
      if (!output || !isFloat(output)) return output;
      const inner = `${n.name}_output_cast_${i}`;
      nodes.push(castNode(inner, output, `${n.name}_output_cast${i}`, DataType.FLOAT16));
      return inner;
    });
  }
  graph.node = [...nodes, ...outputCasts];
}
