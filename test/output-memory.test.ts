/**
 * Run outputs come from reused memory (native/src/output_pool.h: 2 MiB slabs with huge pages requested,
 * a slab reused once V8 has collected every output carved from it; outputs above 1 MiB on their own).
 * What must hold: an output JS still holds is never written over by a later run, and every output is the
 * same as a fresh run's; collected outputs' memory is reused rather than faulted in anew.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const MODEL = path.join(ROOT, 'test', 'fixtures', 'bert-tiny-op14.onnx'); // hidden 64, 512 positions, pooler
const CHILD = path.join(ROOT, 'test', 'output-memory-child.cjs');

function run(batch: number, seq: number, rounds: number) {
  const r = spawnSync(process.execPath, ['--expose-gc', CHILD, MODEL, String(batch), String(seq), String(rounds)], { encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout);
}

describe('run outputs in reused memory', () => {
  it('outputs carved from slabs (4 × 128 × 64 floats = 128 KiB): held outputs intact, every run exact, slabs reused', () => {
    const r = run(4, 128, 200);
    expect(r.mismatches).toBe(0);
    expect(r.heldIntact).toBe(true);
    expect(r.outputsPerRun).toBe(2); // last_hidden_state and pooler_output
    // the pool counts every output JS holds as live (V8 may keep the last result of an async frame
    // reachable a little longer: at most one more run's outputs)
    expect(r.withHeld.live).toBeGreaterThanOrEqual(5 * r.outputsPerRun);
    expect(r.withHeld.live).toBeLessThanOrEqual(6 * r.outputsPerRun);
    expect(r.afterDrop.live).toBeLessThanOrEqual(r.outputsPerRun);
    // 205 runs × (128 KiB + 1 KiB) need 14 slabs of 2 MiB if none were reused
    expect(r.withHeld.slabsReused).toBeGreaterThan(0);
    expect(r.withHeld.slabsMapped).toBeLessThan(14);
    expect(r.afterDrop.spare).toBeLessThanOrEqual(8);
  });
  it('outputs above 1 MiB (9 × 512 × 64 floats) are allocated on their own, held ones intact, all freed', () => {
    const r = run(9, 512, 20);
    expect(r.mismatches).toBe(0);
    expect(r.heldIntact).toBe(true);
    expect(r.withHeld.live).toBeGreaterThanOrEqual(5 * r.outputsPerRun);
    expect(r.withHeld.live).toBeLessThanOrEqual(6 * r.outputsPerRun);
    expect(r.afterDrop.live).toBeLessThanOrEqual(r.outputsPerRun);
  });
});
