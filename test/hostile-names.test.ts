/**
 * Names from a model file that carry a newline and terminal escape sequences (input, output and
 * initializer names): `inspect` (plain listing and --json), a refused model, and the runtime's input
 * checks never pass a raw control character to stdout, stderr or an error message.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Encoder } from '../lib/index.js';
import type { ModelProto } from '../lib/onnx/types.js';
import { base, errorOf, save } from './graph-edits.js';
import { buildSynthModel } from '../lib/index.js';
import { saveModel } from '../lib/onnx/io.js';
import { FIXTURES, ROOT, tmpDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const EVIL_INPUT = 'ids\n\u001b[31mred';
const EVIL_OUTPUT = 'out\r\n\u001b]0;title\u0007';
const EVIL_INIT = 'pos\n\u001b[2J\u0000';
/** Any control character but the newline that ends a line of output. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** Renames a tensor everywhere the graph mentions it. */
function rename(m: ModelProto, from: string, to: string): void {
  const g = m.graph!;
  for (const v of [...g.input, ...g.output, ...g.initializer, ...g.valueInfo]) if (v.name === from) v.name = to;
  for (const n of g.node) {
    n.input = n.input.map((x) => (x === from ? to : x));
    n.output = n.output.map((x) => (x === from ? to : x));
  }
}

function evilModel(): ModelProto {
  const m = base();
  rename(m, 'input_ids', EVIL_INPUT);
  rename(m, m.graph!.output[0].name!, EVIL_OUTPUT);
  rename(m, 'bert.embeddings.position_embeddings.weight', EVIL_INIT);
  return m;
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('names with control characters from the model file', () => {
  const file = save(evilModel(), 'evil.onnx');

  it('inspect lists them escaped: no raw control character on stdout or stderr', () => {
    const r = cli('inspect', file);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("ids='ids\\x0a\\x1b[31mred'");
    expect(r.stdout).toContain("'out\\x0d\\x0a\\x1b]0;title\\x07'");
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });

  it('inspect --json escapes them as JSON does, and they read back intact', () => {
    const r = cli('inspect', file, '--json');
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const s = JSON.parse(r.stdout);
    expect(s.inputs.ids).toBe(EVIL_INPUT);
    expect(s.outputs[0].name).toBe(EVIL_OUTPUT);
  });

  it('a refused model names the initializer escaped, exit 1, nothing written', () => {
    const m = evilModel();
    const init = m.graph!.initializer.find((t) => t.name === EVIL_INIT)!;
    m.graph!.initializer.push({ ...init });
    const bad = save(m, 'twice.onnx');
    const out = path.join(path.dirname(bad), 'out.onnx');
    for (const r of [cli('inspect', bad), cli(bad, '--arch', '1,2,16,24', '-o', out)]) {
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/initializer 'pos\\x0a\\x1b\[2J\\x00' is defined twice/);
      expect(r.stderr).not.toMatch(RAW_CONTROL);
      expect(r.stdout).not.toMatch(RAW_CONTROL);
    }
    expect(fs.existsSync(out)).toBe(false);
  });

  it('an op type with control characters is quoted and escaped where recognition names it', async () => {
    const m = base();
    const g = m.graph!;
    const last = g.output[0].name!;
    g.node.push({ opType: 'Evil\n\u001b[1m', domain: '', name: 'n\u001b', input: [last], output: ['extra'], attribute: [] } as never);
    g.output.push({ ...g.output[0], name: 'extra' });
    const r = cli('inspect', save(m, 'op.onnx'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/read by a 'Evil\\x0a\\x1b\[1m' node 'n\\x1b'/);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });

  it('classify prints label names from the model\'s metadata escaped', () => {
    const model = buildSynthModel({ arch: '1,2,16,24', vocab: 48, head: 'cls', labels: 2, seed: 3 });
    model.metadataProps = [{ key: 'id2label', value: JSON.stringify({ 0: 'neg\n\u001b[2J', 1: 'pos\u001b]0;x\u0007' }) }];
    const cls = path.join(tmpDir(), 'cls.onnx');
    saveModel(model, cls);
    const r = cli('classify', cls, '--vocab', path.join(FIXTURES, 'text', 'wordpiece-uncased-vocab.txt'), 'hello world');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^hello world\t(neg\\x0a\\x1b\[2J|pos\\x1b\]0;x\\x07) \d\.\d{4}\n$/);
    expect(r.stdout.replace('\t', ' ')).not.toMatch(RAW_CONTROL); // the tab is the format's own
  });

  it("the runtime's messages about its inputs quote and escape the model's input name", async () => {
    const enc = await Encoder.load(file, { threads: 1 });
    try {
      expect(enc.inputNames[0]).toBe(EVIL_INPUT);
      const missing = await errorOf(() => enc.run({}));
      expect(missing).toBeInstanceOf(TypeError);
      expect(missing.message).toBe("input 'ids\\x0a\\x1b[31mred' is required");
      const outside = await errorOf(() => enc.run({ [EVIL_INPUT]: { data: BigInt64Array.from([1n, 999n]), dims: [1, 2] } }));
      expect(outside).toBeInstanceOf(RangeError);
      expect(outside.message).toMatch(/^'ids\\x0a\\x1b\[31mred'\[1\] = 999 is outside the vocabulary/);
      for (const e of [missing, outside]) expect(e.message).not.toMatch(RAW_CONTROL);
    } finally {
      enc.close();
    }
  });
});
