/**
 * search.html: a self-contained report of a search (no scripts, no external files): the candidates as
 * an SVG scatter of parameters against latency with the error as colour and the Pareto front marked,
 * the chosen architecture, the source's (teacher's) figures, a table of every candidate, and the
 * command that produced it. One <circle> per candidate.
 */
import type { CandidateRecord, SearchFile } from './search-file.js';
import { formatSpace } from './space.js';

function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function fmt(n: number | undefined, digits = 3): string {
  return n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits);
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** Colour for error e in [lo, hi]: green (low) → yellow → red (high). */
function colour(e: number, lo: number, hi: number): string {
  const t = hi > lo ? Math.min(1, Math.max(0, (e - lo) / (hi - lo))) : 0;
  const hue = 120 * (1 - t);
  return `hsl(${hue.toFixed(0)}, 75%, 45%)`;
}

function scatter(s: SearchFile): string {
  const W = 720, H = 420, L = 80, R = 20, Tm = 20, B = 50;
  const cs = s.candidates.filter((c) => c.latencyMs !== undefined);
  if (!cs.length) return '<p>No candidate has been timed yet.</p>';
  const xs = cs.map((c) => c.params), ys = cs.map((c) => c.latencyMs!);
  const pad = (lo: number, hi: number) => (hi > lo ? [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05] : [lo * 0.9, hi * 1.1 || 1]);
  const [x0, x1] = pad(Math.min(...xs), Math.max(...xs));
  const [y0, y1] = pad(Math.min(...ys), Math.max(...ys));
  const px = (v: number) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const py = (v: number) => H - B - ((v - y0) / (y1 - y0)) * (H - Tm - B);
  const errs = cs.filter((c) => c.error !== undefined).map((c) => c.error!);
  const lo = errs.length ? Math.min(...errs) : 0, hi = errs.length ? Math.max(...errs) : 1;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="parameters against latency">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${Tm}" x2="${L}" y2="${H - B}" stroke="#333"/>`);
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + ((x1 - x0) * i) / 4, yv = y0 + ((y1 - y0) * i) / 4;
    parts.push(`<text x="${px(xv).toFixed(1)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${esc((xv / 1e6).toFixed(2))}M</text>`);
    parts.push(`<text x="${L - 6}" y="${(py(yv) + 4).toFixed(1)}" font-size="11" text-anchor="end">${esc(yv.toFixed(2))}</text>`);
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" font-size="12" text-anchor="middle">parameters p̂</text>`);
  parts.push(`<text x="16" y="${(Tm + H - B) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${(Tm + H - B) / 2})">latency î (ms)</text>`);
  // the front, joined in order of parameters
  const front = cs.filter((c) => c.pareto).sort((a, b) => a.params - b.params);
  if (front.length > 1) parts.push(`<polyline class="front" fill="none" stroke="#555" stroke-dasharray="4 3" points="${front.map((c) => `${px(c.params).toFixed(1)},${py(c.latencyMs!).toFixed(1)}`).join(' ')}"/>`);
  for (const c of cs) {
    const fill = c.error === undefined ? '#fff' : colour(c.error, lo, hi);
    const stroke = c.pareto ? '#000' : c.error === undefined ? '#999' : 'none';
    const title = `${c.key}: ${count(c.params)} params, ${fmt(c.latencyMs, 2)} ms${c.error !== undefined ? `, ê ${fmt(c.error, 4)}, W ${fmt(c.w, 3)}` : ', not evaluated'}${c.pareto ? ', Pareto' : ''}`;
    parts.push(`<circle class="candidate${c.pareto ? ' pareto' : ''}" data-key="${esc(c.key)}" cx="${px(c.params).toFixed(1)}" cy="${py(c.latencyMs!).toFixed(1)}" r="${c.pareto ? 6 : 4.5}" fill="${fill}" stroke="${stroke}" stroke-width="1.5"><title>${esc(title)}</title></circle>`);
  }
  const chosen = cs.find((c) => c.chosen);
  if (chosen) {
    const cx = px(chosen.params), cy = py(chosen.latencyMs!);
    parts.push(`<rect class="chosen" x="${(cx - 10).toFixed(1)}" y="${(cy - 10).toFixed(1)}" width="20" height="20" fill="none" stroke="#06c" stroke-width="2.5"><title>chosen: ${esc(chosen.key)}</title></rect>`);
  }
  // colour legend
  for (let i = 0; i < 10; i++) parts.push(`<rect x="${W - R - 150 + i * 15}" y="${Tm}" width="15" height="10" fill="${colour(lo + ((hi - lo) * i) / 9, lo, hi)}"/>`);
  parts.push(`<text x="${W - R - 150}" y="${Tm + 24}" font-size="10">ê ${esc(fmt(lo, 3))}</text><text x="${W - R}" y="${Tm + 24}" font-size="10" text-anchor="end">${esc(fmt(hi, 3))}</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

function row(c: CandidateRecord): string {
  const cls = [c.chosen ? 'chosen' : '', c.pareto ? 'pareto' : ''].filter(Boolean).join(' ');
  return `<tr${cls ? ` class="${cls}"` : ''}><td>${esc(c.key)}</td><td>${count(c.params)}</td><td>${fmt(c.latencyMs, 2)}${c.latencySource === 'cost-model' ? ' (model)' : ''}</td><td>${fmt(c.latencyModelMs, 2)}</td>` +
    `<td>${fmt(c.error, 4)}</td><td>${fmt(c.kl, 4)}</td><td>${c.agreement === undefined ? '–' : (100 * c.agreement).toFixed(1) + '%'}</td><td>${fmt(c.w, 3)}</td>` +
    `<td>${c.pareto ? 'yes' : c.error === undefined ? '–' : 'no'}</td><td>${c.plan ? esc(c.plan.layers.join(',')) : '–'}</td></tr>`;
}

export function renderReport(s: SearchFile): string {
  const chosen = s.candidates.find((c) => c.chosen);
  const evaluated = s.candidates.filter((c) => c.error !== undefined);
  const cm = s.costModel;
  const src = s.source;
  const cand = [...s.candidates].sort((a, b) => (b.w ?? -1) - (a.w ?? -1) || a.params - b.params);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bort-compress search: ${esc(s.chosen ?? s.status)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f4f4f4}
tr.chosen{background:#dcebff;font-weight:bold}tr.pareto td:first-child{text-decoration:underline}
code{background:#f4f4f4;padding:1px 4px}.status{color:#a60}
</style></head><body>
<h1>Sub-architecture search</h1>
<p>Command: <code>${esc(s.command ?? '(API call)')}</code></p>
<p>Model <code>${esc(s.config.model)}</code>; space <code>${esc(formatSpace(s.config.space))}</code>; shape ${s.config.shape.batch}×${s.config.shape.seq};
n = ${s.config.steps} steps; ε = ${s.config.epsilon}; extraction by <b>${esc(s.config.strategy)}</b>; calibration ${s.config.calibration.sequences} sequences × ${s.config.calibration.seq} tokens (${s.config.calibration.positions} masked positions) from <code>${esc(s.config.corpus)}</code>.
${s.status !== 'done' ? `<span class="status">Status: ${esc(s.status)} (resume with the same command).</span>` : ''}</p>
<h2>Chosen architecture</h2>
${chosen
    ? `<p id="chosen"><b>${esc(chosen.key)}</b> (D,A,H,I): ${count(chosen.params)} parameters (${(100 * chosen.params / src.params).toFixed(1)}% of the source), ${fmt(chosen.latencyMs, 2)} ms (source ${fmt(src.latencyMs, 2)} ms), ê ${fmt(chosen.error, 4)} nats, KL to T ${fmt(chosen.kl, 4)}, agreement with T ${chosen.agreement === undefined ? '–' : (100 * chosen.agreement).toFixed(1) + '%'}, W ${fmt(chosen.w, 3)}; source layers kept ${esc(chosen.plan?.layers.join(',') ?? '–')}.</p>`
    : '<p id="chosen">None yet.</p>'}
<h2>Teacher (source) and maximum point T</h2>
<table><tr><th></th><th>D,A,H,I</th><th>params</th><th>latency ms</th><th>ê (cross-entropy to T)</th><th>KL to T</th><th>agreement with T</th></tr>
<tr><td>source</td><td>${esc(`${src.arch.layers},${src.arch.heads},${src.arch.hidden},${src.arch.intermediate}`)}</td><td>${count(src.params)}</td><td>${fmt(src.latencyMs, 2)}</td><td>${fmt(src.error, 4)}</td><td>${fmt(src.kl, 4)}</td><td>${src.agreement === undefined ? '–' : (100 * src.agreement).toFixed(1) + '%'}</td></tr>
<tr><td>T</td><td>${esc(s.maximumPoint.key)}</td><td>${count(s.maximumPoint.params)}</td><td>${fmt(s.maximumPoint.latencyMs, 2)}</td><td>${fmt(s.maximumPoint.error, 4)}</td><td>0</td><td>100%</td></tr></table>
<h2>Pareto front</h2>
<p>${s.candidates.length} candidates, ${evaluated.length} evaluated, ${evaluated.filter((c) => c.pareto).length} on the front of (î, p̂, ê) (black outline, dashed line); colour: ê; blue square: chosen; white: not evaluated (FPTAS interval).</p>
${scatter(s)}
${cm ? `<p>Latency cost model î ≈ ${cm.interceptMs.toFixed(3)} ms + ${cm.msPerGflop.toFixed(3)} ms/GFLOP, fitted to ${cm.points} measured candidates: mean error ${(100 * cm.meanRelError).toFixed(1)}% (max ${(100 * cm.maxRelError).toFixed(1)}%), leave-one-out ${(100 * cm.looMeanRelError).toFixed(1)}% (max ${(100 * cm.looMaxRelError).toFixed(1)}%).</p>` : ''}
<h2>Candidates</h2>
<table><tr><th>D,A,H,I</th><th>params p̂</th><th>latency î ms</th><th>cost model ms</th><th>ê nats</th><th>KL</th><th>agreement</th><th>W</th><th>Pareto</th><th>layers kept</th></tr>
${cand.map(row).join('\n')}
</table>
<h2>Notes</h2><ul>${s.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>
<p>${s.seconds.toFixed(1)} s of search.</p>
</body></html>
`;
}
