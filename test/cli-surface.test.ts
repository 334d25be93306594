// The surface users touch: CLI arguments a user can get wrong (each one line, exit 1, nothing written),
// mistyped commands, help that lists every option, the library's exported types (enough to write a
// custom scorer), `engines`, and the shipped JavaScript's source-map references.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BortError, applyPlan, buildSynthModel, inspect, loadModel, parseArch, planExtraction, recognize, firstScorer, type ModelProto } from '../lib/index.js';
import { checkSynthSize } from '../lib/cli/synth-size.js';
import { OPTIONS, COMMANDS } from '../lib/cli/options.js';
import { closestName, editDistance } from '../lib/cli/suggest.js';
import { FIXTURES, ROOT, runOrt, fixture, tmpDir } from './helpers.js';
import { compressWithCustomScorer } from './public-api-scorer.js';

const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const OP14 = path.join(FIXTURES, 'bert-tiny-op14.onnx');

function cli(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1, one line `bort-compress: error: …` matching `message`, no stack, and `dir` still holds only `before`. */
function expectRefusal(args: string[], message: RegExp, cwd?: string): void {
  const dir = tmpDir();
  const before = ['keep.txt'];
  fs.writeFileSync(path.join(dir, 'keep.txt'), 'x');
  const r = cli(args.map((a) => a.replace('$DIR', dir)), cwd ?? dir);
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^bort-compress: error: /);
  expect(lines[0]).toMatch(message);
  expect(r.stdout).toBe('');
  expect(fs.readdirSync(dir)).toEqual(before);
}

describe('CLI: every option value a user can get wrong is refused in one line, exit 1, nothing written', () => {
  const cases: [string, string[], RegExp][] = [
    ['bench --seq 0', ['bench', OP14, '--seq', '0'], /--seq 0 is out of range: pass --seq N with N a whole number from 1 to 65,536/],
    ['bench --threads 99999999999', ['bench', OP14, '--threads', '99999999999'], /--threads 99999999999 is out of range: .* from 1 to 256/],
    ['bench --threads 0', ['bench', OP14, '--threads', '0'], /--threads 0 is out of range/],
    ['bench --batch 0', ['bench', OP14, '--batch', '0'], /--batch 0 is out of range: .* from 1 to 1,024/],
    ['bench --runs 3', ['bench', OP14, '--runs', '3'], /--runs 3 is out of range: .* from 10 to 10,000/],
    ['bench --seq=-1', ['bench', OP14, '--seq=-1'], /--seq '-1' is not a whole number/],
    ['bench --seq 1.5', ['bench', OP14, '--seq', '1.5'], /--seq '1.5' is not a whole number/],
    ['bench --seq beyond the model\'s positions', ['bench', OP14, '--seq', '513'], /--seq 513 exceeds the longest sequence the model reads \(512 tokens\): pass --seq 512 or less/],
    ['bench batch × seq too large', ['bench', OP14, '--batch', '1024', '--seq', '512'], /--batch 1024 × --seq 512 is 524288 tokens per run: keep batch × seq at most 65536/],
    ['bench without a model', ['bench'], /missing the model path: see bort-compress bench --help/],
    ['synth --vocab 0', ['synth', '--arch', '1,1,8,8', '--vocab', '0', '-o', '$DIR/m.onnx'], /--vocab 0 is out of range: .* from 1 to 1,000,000/],
    ['synth --vocab 99999999999', ['synth', '--arch', '1,1,8,8', '--vocab', '99999999999', '-o', '$DIR/m.onnx'], /--vocab 99999999999 is out of range/],
    ['synth --positions 0', ['synth', '--arch', '1,1,8,8', '--positions', '0', '-o', '$DIR/m.onnx'], /--positions 0 is out of range/],
    ['synth --type-vocab 5000', ['synth', '--arch', '1,1,8,8', '--type-vocab', '5000', '-o', '$DIR/m.onnx'], /--type-vocab 5000 is out of range: .* from 0 to 1,024/],
    ['synth --labels 0', ['synth', '--arch', '1,1,8,8', '--head', 'cls', '--labels', '0', '-o', '$DIR/m.onnx'], /--labels 0 is out of range/],
    ['synth --seed 2^32', ['synth', '--arch', '1,1,8,8', '--seed', '4294967296', '-o', '$DIR/m.onnx'], /--seed 4294967296 is out of range: .* from 0 to 4,294,967,295/],
    ['synth --opset 10', ['synth', '--arch', '1,1,8,8', '--opset', '10', '-o', '$DIR/m.onnx'], /--opset 10 is out of range: .* from 11 to 17/],
    ['synth --opset 18 (above what synth writes)', ['synth', '--arch', '1,1,8,8', '--opset', '18', '-o', '$DIR/m.onnx'], /--opset 18 is out of range: .* from 11 to 17/],
    ['synth with a weight too large', ['synth', '--arch', '1,1,100000,1', '-o', '$DIR/m.onnx'], /word embeddings \(vocab × hidden\) would hold 3,052,200,000 values, more than 268,435,456: choose smaller sizes/],
    ['synth with too many parameters', ['synth', '--arch', '1000,1,8192,8192', '--vocab', '10', '-o', '$DIR/m.onnx'], /model would have [\d,]+ parameters, more than 1,073,741,824/],
    ['synth --arch with a huge number', ['synth', '--arch', '99999999999999999999,1,8,8', '-o', '$DIR/m.onnx'], /--arch '99999999999999999999,1,8,8' has a size above 1,048,576/],
    ['synth --head with a control character', ['synth', '--arch', '1,1,8,8', '--head', 'ml\x1b[2Jm', '-o', '$DIR/m.onnx'], /--head 'ml\\x1b\[2Jm' is unknown: use --head base, mlm, cls, qa or token-cls/],
    ['synth -o given twice (option and argument)', ['synth', '--arch', '1,1,8,8', '-o', '$DIR/m.onnx', '$DIR/n.onnx'], /unexpected argument '.*n\.onnx'/],
    ['compress: --rescale-attention against --attention-scale keep', [OP14, '--arch', '1,2,32,64', '--attention-scale', 'keep', '--rescale-attention', '-o', '$DIR/out.onnx'], /--rescale-attention contradicts --attention-scale keep/],
    ['compress: two input models', [OP14, OP14, '--arch', '1,2,32,64', '-o', '$DIR/out.onnx'], /unexpected argument '.*bert-tiny-op14\.onnx': give one model path/],
    ['compress: --attention-scale unknown', [OP14, '--arch', '1,2,32,64', '--attention-scale', 'max', '-o', '$DIR/out.onnx'], /--attention-scale 'max' is unknown: use --attention-scale mean, keep or rescale/],
    ['an option another command has', ['inspect', OP14, '--arch', '1,2,32,64'], /Unknown option '--arch': see bort-compress inspect --help/],
    ['inspect with two models', ['inspect', OP14, OP14], /unexpected argument/],
    ['demo with an argument', ['demo', 'now'], /unexpected argument 'now': demo takes no arguments/],
    ['an option without its value', ['synth', '--arch', '1,1,8,8', '-o'], /Option '-o, --output <value>' argument missing: see bort-compress synth --help/],
  ];
  for (const [what, args, message] of cases) it(what, () => expectRefusal(args, message));
});

describe('CLI: a mistyped command', () => {
  for (const [typed, meant] of [['inspet', 'inspect'], ['synht', 'synth'], ['bech', 'bench'], ['dmeo', 'demo'], ['compres', 'compress'], ['Inspect', 'inspect']]) {
    it(`'${typed}' → did you mean '${meant}'?`, () => {
      expectRefusal([typed, OP14], new RegExp(`unknown command '${typed}': did you mean '${meant}'\\?`));
    });
  }

  it('a word far from every command is taken as a missing input file', () => {
    expectRefusal(['frobnicate', '--arch', '1,2,32,64'], /cannot read .*frobnicate: no such file/);
  });

  it('a missing path that looks like a path is never a command typo', () => {
    expectRefusal(['inspet.onnx', '--arch', '1,2,32,64'], /cannot read .*inspet\.onnx: no such file/);
  });

  it('an existing file with a command-like name is still the input of compress', () => {
    const dir = tmpDir();
    fs.copyFileSync(OP14, path.join(dir, 'inspet'));
    const r = cli(['inspet', '--arch', '1,2,32,64', '-o', 'out.onnx'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/arch {4}2,4,64,256 → 1,2,32,64/);
    expect(inspect(path.join(dir, 'out.onnx')).arch).toEqual({ layers: 1, heads: 2, hidden: 32, intermediate: 64 });
  });

  it('`compress` may be named: the same as giving the input first', () => {
    const dir = tmpDir();
    const r = cli(['compress', OP14, '--arch', '1,2,32,64', '-o', 'out.onnx', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).target.arch).toEqual({ layers: 1, heads: 2, hidden: 32, intermediate: 64 });
  });

  it('edit distance counts a swap of neighbours as one edit', () => {
    expect(editDistance('synht', 'synth')).toBe(1);
    expect(editDistance('inspet', 'inspect')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(closestName('model', [...COMMANDS])).toBeUndefined();
    expect(closestName('dem', [...COMMANDS])).toBe('demo');
  });
});

describe('CLI help lists every option each command accepts', () => {
  /** The lines of a help text after "Options:". */
  const optionsSection = (text: string) => text.slice(text.indexOf('\nOptions:\n'));
  for (const cmd of COMMANDS) {
    it(cmd, () => {
      const r = cli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^bort-compress ${cmd === 'compress' ? 'IN\\.onnx' : cmd}`));
      expect(r.stdout).toContain('\nOptions:\n');
      const section = optionsSection(r.stdout);
      const names = Object.keys(OPTIONS[cmd]);
      expect(names.length).toBeGreaterThan(0);
      for (const [name, spec] of Object.entries(OPTIONS[cmd])) {
        expect(section, `--${name} in ${cmd} --help`).toMatch(new RegExp(`^ +${spec.short ? `-${spec.short}, ` : ''}--${name}\\b`, 'm'));
      }
      // and nothing listed there that the command does not accept
      const listed = [...section.matchAll(/^ +(?:-\w, )?--([a-z0-9-]+)/gm)].map((m) => m[1]);
      expect(listed.sort()).toEqual(names.sort());
    });
  }

  it('the main help names every command, and `help CMD` is CMD --help', () => {
    const main = cli(['--help']).stdout;
    for (const cmd of COMMANDS.filter((c) => c !== 'compress')) expect(main).toMatch(new RegExp(`^  bort-compress ${cmd}\\b`, 'm'));
    expect(cli(['help', 'bench']).stdout).toBe(cli(['bench', '--help']).stdout);
  });
});

describe('library: rewrite failures a model can cause are BortErrors', () => {
  it('a head-shape constant of a type that cannot be patched', () => {
    const model: ModelProto = buildSynthModel({ arch: '1,4,32,64', vocab: 50, headShape: 'constant' });
    const m = recognize(model);
    const site = m.layers[0].attention.shapeSites.find((s) => s.role === 'heads')!;
    const t = m.index.constant(site.constant)!;
    // the same values as float32 (recognition read them as int64 already)
    const vals = Float32Array.from([0, 0, 4, 8]);
    Object.assign(t, { dataType: 1, rawData: new Uint8Array(vals.buffer) });
    const plan = planExtraction(m, { layers: 1, heads: 2, hidden: 16, intermediate: 64 }, firstScorer);
    let err: unknown;
    try {
      applyPlan(m, plan);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BortError);
    expect((err as Error).message).toMatch(/head-shape constant '.+' has data type 1, not int64 or int32: only integer head-shape constants can be changed/);
    expect((err as Error).message).not.toMatch(/\n/);
  });
});

describe('library: a custom ImportanceScorer from the public API alone', () => {
  const file = path.join(ROOT, 'test', 'public-api-scorer.ts');

  it('typechecks with tsc against lib/index.ts, as do the README\'s TypeScript examples', () => {
    const dir = tmpDir();
    // each ```ts block of the README as a module of its own, importing lib/index.ts for 'bort-compress'
    const blocks = [...fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    const examples = blocks.map((code, i) => {
      const f = path.join(dir, `readme-${i}.mts`);
      fs.writeFileSync(f, 'export {};\n' + code.replaceAll("'bort-compress'", `'${path.join(ROOT, 'lib', 'index.js')}'`));
      return f;
    });
    const config = path.join(dir, 'tsconfig.json');
    fs.writeFileSync(config, JSON.stringify({
      extends: path.join(ROOT, 'tsconfig.json'),
      compilerOptions: { noEmit: true, rootDir: '/', noUnusedLocals: false, typeRoots: [path.join(ROOT, 'node_modules', '@types')] },
      include: [],
      files: [file, ...examples],
    }));
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', config], { encoding: 'utf8', cwd: dir });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
    // the scorer module imports from the entry point only
    const imports = [...fs.readFileSync(file, 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    expect(imports).toEqual(['../lib/index.js']);
  });

  it('a scorer that returns the wrong number of scores, or a NaN, is named in a TypeError', () => {
    const m = recognize(buildSynthModel({ arch: '2,4,32,64', vocab: 50 }));
    const target = { layers: 1, heads: 2, hidden: 16, intermediate: 32 };
    const short = { ...firstScorer, name: 'short', neurons: () => [1, 2, 3] };
    expect(() => planExtraction(m, target, short)).toThrow(TypeError);
    expect(() => planExtraction(m, target, short)).toThrow(/scorer 'short': neurons\(m, 0\) returned 3 scores for 64 neurons/);
    const nan = { ...firstScorer, name: 'nan', hidden: () => new Array(32).fill(NaN) };
    expect(() => planExtraction(m, target, nan)).toThrow(/scorer 'nan': hidden\(m\) returned NaN at 0; scores must be numbers/);
    const sim = { ...firstScorer, name: 'sim', headSimilarity: () => [[1]] };
    expect(() => planExtraction(m, { ...target, heads: 1 }, sim)).toThrow(/scorer 'sim': headSimilarity\(m, 0\) must be a 4×4 array/);
  });

  it('compress() takes it, and plan + applyPlan + saveModel give the same model', async () => {
    const dir = tmpDir();
    const target = { layers: 1, heads: 2, hidden: 32, intermediate: 100 };
    const out = path.join(dir, 'custom.onnx'), stepwise = path.join(dir, 'stepwise.onnx');
    const r = await compressWithCustomScorer(OP14, target, out, stepwise);
    expect(r.summary.strategy).toBe('last-layers');
    expect(r.summary.plan.layers).toEqual([1]);
    expect(r.firstLayer.source).toBe(1);
    expect(r.firstLayer.headSources).toEqual([[2], [3]]);
    // the 100 neurons with the largest input-weight norms, ranked here independently
    const byNorm = r.neuronNorms.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 100).map((x) => x[1]).sort((a, b) => a - b);
    expect(r.firstLayer.neurons).toEqual(byNorm);
    expect(r.stats.removedNodes).toBeGreaterThan(0);
    expect(fs.readFileSync(stepwise).equals(fs.readFileSync(out))).toBe(true);
    const o = await runOrt(out, fixture('bert-tiny-op14').inputs);
    expect(o.last_hidden_state.dims).toEqual([2, 16, 32]);
  });
});

/** Top-level declarations of the .d.ts files under dist/, comments removed: name → texts. */
function declarations(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.d.ts') ? [path.join(d, e.name)] : []));
  for (const f of walk(path.join(ROOT, 'dist'))) {
    const text = fs.readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    let name: string | undefined;
    let body = '';
    const flush = () => {
      if (name) out.set(name, [...(out.get(name) ?? []), body]);
      name = undefined;
    };
    for (const line of text.split('\n')) {
      const m = /^(?:export\s+)?(?:declare\s+)?(?:abstract\s+)?(?:interface|type|class|enum|function|const)\s+([A-Za-z_$][\w$]*)/.exec(line);
      if (m) {
        flush();
        [name, body] = [m[1], line];
      } else if (/^(import|export)\b/.test(line)) {
        flush();
      } else if (name) {
        body += '\n' + line;
      }
    }
    flush();
  }
  return out;
}

describe('every type an exported signature uses is exported from the entry point', () => {
  it('dist/index.d.ts', () => {
    const index = fs.readFileSync(path.join(ROOT, 'dist', 'index.d.ts'), 'utf8');
    const exported = new Set(
      [...index.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}\s*from/g)].flatMap((m) => m[1].split(',').map((s) => s.trim().replace(/^type\s+/, '')).filter(Boolean)),
    );
    expect(exported).toContain('applyPlan');
    expect(exported).toContain('ImportanceScorer');
    const decls = declarations();
    const typeNames = new Set([...decls].filter(([, texts]) => texts.some((t) => /^(?:export\s+)?(?:declare\s+)?(?:abstract\s+)?(?:interface|type|class|enum)\s/.test(t))).map(([n]) => n));
    const missing = new Set<string>();
    const seen = new Set<string>();
    const todo = [...exported];
    while (todo.length) {
      const name = todo.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      for (const text of decls.get(name) ?? []) {
        // identifiers of the declaration (private members carry no types in .d.ts)
        for (const [id] of text.matchAll(/\b[A-Z][A-Za-z0-9_]*\b/g)) {
          if (id === name || !typeNames.has(id)) continue;
          if (!exported.has(id)) missing.add(`${id} (used by ${name})`);
          todo.push(id);
        }
      }
    }
    expect(seen.size).toBeGreaterThan(40);
    expect([...missing]).toEqual([]);
  });
});

describe('README claims', () => {
  it('the compressed model keeps the inputs and outputs: names, types, dynamic axes; declared hidden sizes follow', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'small.onnx');
    const r = cli([OP14, '--arch', '1,2,32,64', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const io = (f: string) => {
      const g = loadModel(f).model.graph!;
      const info = (v: (typeof g.input)[number]) => ({
        name: v.name, elem: v.type?.tensorType?.elemType,
        dims: v.type?.tensorType?.shape?.dim.map((d) => d.dimParam ?? Number(d.dimValue)),
      });
      return { inputs: g.input.map(info), outputs: g.output.map(info) };
    };
    const a = io(OP14), b = io(out);
    expect(b.inputs).toEqual(a.inputs);
    expect(a.outputs.map((o) => o.dims)).toEqual([['batch_size', 'sequence_length', 64], ['batch_size', 64]]);
    expect(b.outputs).toEqual(a.outputs.map((o) => ({ ...o, dims: o.dims!.map((d) => (d === 64 ? 32 : d)) })));
  });

  it('inspect --json has the keys the README lists', () => {
    const j = JSON.parse(cli(['inspect', OP14, '--json']).stdout);
    for (const k of ['arch', 'vocab', 'params', 'headSize', 'scoreScale', 'heads', 'inputs', 'outputs', 'tokenTypeIds', 'positionIds', 'attentionMask']) expect(j, k).toHaveProperty(k);
    expect(Object.keys(j.arch)).toEqual(['layers', 'heads', 'hidden', 'intermediate']);
  });

  it('bench MODEL --json times the engine and onnxruntime on the same shapes', () => {
    const r = cli(['bench', OP14, '--seq', '16', '--threads', '1', '--runs', '10', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect([j.batch, j.seq, j.threads]).toEqual([1, 16, 1]);
    expect(j.arch).toEqual({ layers: 2, heads: 4, hidden: 64, intermediate: 256 });
    expect(j.ours.runsMs).toHaveLength(10);
    expect(j.ort.runsMs).toHaveLength(10);
    expect(j.ort.version).toMatch(/^\d+\.\d+/);
  });

  it('synth\'s size limits admit BERT-large (and Bort) and refuse a 90-layer BERT-large (over 2³⁰ parameters)', () => {
    const sizes = { vocab: 30522, maxPositions: 512, typeVocab: 2, labels: 2 };
    for (const head of ['base', 'mlm', 'cls']) expect(() => checkSynthSize(parseArch('24,16,1024,4096'), sizes, head)).not.toThrow();
    expect(() => checkSynthSize(parseArch('4,8,1024,768'), sizes, 'base')).not.toThrow();
    expect(() => checkSynthSize(parseArch('90,16,1024,4096'), sizes, 'base')).toThrow(/more than 1,073,741,824/);
  });
});

describe('package metadata', () => {
  it('engines.node is what the tests run on, and the README says the same', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const m = /^>=(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(pkg.engines.node);
    expect(m, pkg.engines.node).not.toBeNull();
    const floor = [Number(m![1]), Number(m![2] ?? 0), Number(m![3] ?? 0)];
    const running = process.versions.node.split('.').map(Number);
    // the floor is a release line this suite runs on: vitest itself needs Node 20
    expect(floor[0]).toBeLessThanOrEqual(running[0]);
    expect(floor).toEqual([20, 0, 0]);
    expect(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')).toContain(`Node ≥ ${floor[0]} (\`engines\``);
  });

  it('no shipped JavaScript points at a source map the tarball leaves out', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files: string[] = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')))[0].files.map((f: { path: string }) => f.path);
    const shipped = new Set(files);
    const js = files.filter((f) => f.endsWith('.js'));
    expect(js).toContain('dist/index.js');
    const dangling: string[] = [];
    for (const f of js) {
      for (const m of fs.readFileSync(path.join(ROOT, f), 'utf8').matchAll(/[#@] sourceMappingURL=(\S+)/g)) {
        if (m[1].startsWith('data:')) continue;
        const target = path.posix.join(path.posix.dirname(f), m[1]);
        if (!shipped.has(target)) dangling.push(`${f} → ${target}`);
      }
    }
    expect(dangling).toEqual([]);
  });
});
