// What a person sees of a simulation (design.md §8, §9): the table `slapmesh simulate` prints, and the report
// folder of `--report DIR` — report.json (the SimulationResult itself) and report.html, a self-contained page
// (inline CSS and SVG, no script, no external URL) that any browser opens from disk.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { escapeXml, renderPlot } from './svg-plot.js';
import type { AssertionResult, SimulationResult } from './types.js';

export const REPORT_JSON = 'report.json';
export const REPORT_HTML = 'report.html';

const TABLE_WIDTH = 80;
const ID_COLUMN = 32;
/** Violations shown under a failing assertion in the table; the report keeps them all. */
const VIOLATIONS_SHOWN = 3;

/** A run passes when it says so and every assertion agrees. */
export function passed(result: SimulationResult): boolean {
  return result.ok && result.assertions.every((a) => a.ok);
}

/** A metric for people: ms whole, other fractions to 3 significant digits, names carry the unit. */
export function formatMetric(name: string, value: number | string | boolean): string {
  if (typeof value !== 'number') return String(value);
  if (!Number.isFinite(value) || Number.isInteger(value)) return String(value);
  if (/Ms$/.test(name) || Math.abs(value) >= 100) return String(Math.round(value));
  return String(Number(value.toPrecision(3)));
}

/** The plain-text table printed on stdout: verdict, metrics, assertions with their first violations. */
export function formatTable(result: SimulationResult): string {
  const lines = [`${headline(result)}`, ''];
  const metrics = Object.entries(result.metrics);
  if (metrics.length) {
    lines.push('metrics');
    const nameWidth = Math.min(40, Math.max(...metrics.map(([name]) => name.length)));
    for (const [name, value] of metrics) {
      lines.push(fit(`  ${name.padEnd(nameWidth)}  ${oneLine(formatMetric(name, value))}`));
    }
    lines.push('');
  }
  lines.push('assertions');
  if (result.assertions.length === 0) lines.push('  (none)');
  // Ids longer than ID_COLUMN get a line of their own rather than widening the column for every row.
  const idWidth = Math.max(0, ...result.assertions.map((a) => a.id.length).filter((length) => length <= ID_COLUMN));
  for (const assertion of result.assertions) lines.push(...assertionRows(assertion, idWidth));
  return lines.join('\n');
}

function headline(result: SimulationResult): string {
  const holding = result.assertions.filter((a) => a.ok).length;
  return `${result.scenario}: ${result.nodes} nodes, ${result.seconds.toFixed(1)} s, ` +
    `${holding}/${result.assertions.length} assertions hold — ${passed(result) ? 'PASS' : 'FAIL'}`;
}

function assertionRows(assertion: AssertionResult, idWidth: number): string[] {
  const column = 2 + 4 + 2 + idWidth + 2;
  const description = wrap(oneLine(assertion.description), Math.max(30, TABLE_WIDTH - column));
  const lead = `  ${assertion.ok ? 'ok  ' : 'FAIL'}  ${assertion.id.padEnd(idWidth)}  `;
  const indent = ' '.repeat(column);
  // An id wider than its column pushes the description onto the next line rather than out of line.
  const rows = lead.length > column
    ? [lead.trimEnd(), ...description.map((line) => indent + line)]
    : description.map((line, i) => (i === 0 ? lead : indent) + line);
  if (!assertion.ok) {
    for (const violation of assertion.violations.slice(0, VIOLATIONS_SHOWN)) rows.push(fit(`        - ${oneLine(violation)}`));
    const more = assertion.violations.length - VIOLATIONS_SHOWN;
    if (more > 0) rows.push(`        … ${more} more`);
  }
  return rows;
}

/** Newlines and tabs inside a value would break the table's rows. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function fit(line: string): string {
  return line.length <= TABLE_WIDTH ? line : `${line.slice(0, TABLE_WIDTH - 1)}…`;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l));
}

/** The HTML page of the report: verdict, assertions (violations folded), metrics, one SVG per plot. */
export function renderHtml(result: SimulationResult): string {
  const verdict = passed(result) ? 'PASS' : 'FAIL';
  const title = `slapmesh simulate ${result.scenario} — ${verdict}`;
  const holding = result.assertions.filter((a) => a.ok).length;
  const assertionRows = result.assertions.map((a) => {
    const violations = a.violations.length
      ? `<details><summary>${a.violations.length} violation${a.violations.length === 1 ? '' : 's'}</summary><ul>` +
        a.violations.map((v) => `<li>${escapeXml(v)}</li>`).join('') + '</ul></details>'
      : '';
    return `<tr class="${a.ok ? 'ok' : 'fail'}"><td class="status">${a.ok ? 'ok' : 'FAIL'}</td><td><code>${escapeXml(a.id)}</code></td>` +
      `<td>${escapeXml(a.description)}${violations}</td></tr>`;
  });
  const metricRows = Object.entries(result.metrics).map(([name, value]) =>
    `<tr><td><code>${escapeXml(name)}</code></td><td class="num">${escapeXml(formatMetric(name, value))}</td></tr>`);
  const plots = result.plots.map((plot) => `<figure id="plot-${escapeXml(plot.id)}">\n${renderPlot(plot)}\n</figure>`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${escapeXml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>Simulation <code>${escapeXml(result.scenario)}</code></h1>
<p class="summary"><span class="verdict ${verdict.toLowerCase()}">${verdict}</span>
${result.nodes} nodes · ${escapeXml(result.seconds.toFixed(1))} s · ${holding}/${result.assertions.length} assertions hold</p>
<h2>Assertions</h2>
${assertionRows.length ? `<table class="assertions"><thead><tr><th></th><th>id</th><th>what must hold</th></tr></thead><tbody>\n${assertionRows.join('\n')}\n</tbody></table>` : '<p>No assertions.</p>'}
<h2>Metrics</h2>
${metricRows.length ? `<table class="metrics"><tbody>\n${metricRows.join('\n')}\n</tbody></table>` : '<p>No metrics.</p>'}
<h2>Plots</h2>
${plots.length ? `<div class="plots">\n${plots.join('\n')}\n</div>` : '<p>This run recorded no plots.</p>'}
</main>
</body>
</html>
`;
}

/** Writes report.json and report.html into `dir` (created if needed), each whole or not at all. */
export async function writeReport(dir: string, result: SimulationResult): Promise<{ json: string; html: string }> {
  dir = resolve(dir);
  await mkdir(dir, { recursive: true });
  const json = join(dir, REPORT_JSON);
  const html = join(dir, REPORT_HTML);
  await writeAtomically(json, `${JSON.stringify(result, null, 2)}\n`);
  await writeAtomically(html, renderHtml(result));
  return { json, html };
}

/** A temp name in the same folder, then a rename: a reader never sees half a file. */
async function writeAtomically(file: string, content: string): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, content, { flag: 'wx' });
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

const STYLE = `
body { margin: 0; background: #f6f6f4; color: #1d1d1f; font: 14px/1.45 system-ui, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { margin: 0 0 8px; font-size: 24px; }
h2 { margin: 28px 0 10px; font-size: 18px; }
code { font-family: ui-monospace, monospace; font-size: 13px; }
.summary { margin: 0; }
.verdict { display: inline-block; margin-right: 8px; padding: 2px 10px; border-radius: 4px; font-weight: 700; }
.verdict.pass { background: #d7f0dd; color: #0b5d1e; }
.verdict.fail { background: #fbdada; color: #8a1111; }
table { border-collapse: collapse; background: #fff; border: 1px solid #e0e0e0; }
th, td { padding: 5px 12px; border-bottom: 1px solid #ececec; text-align: left; vertical-align: top; }
th { background: #fafafa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.status { font-weight: 700; }
tr.ok td.status { color: #0b5d1e; }
tr.fail td.status { color: #8a1111; }
tr.fail { background: #fff6f6; }
details { margin-top: 4px; }
summary { cursor: pointer; color: #8a1111; }
details ul { margin: 4px 0; padding-left: 20px; font-family: ui-monospace, monospace; font-size: 12px; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
figure { margin: 0; padding: 8px; background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; }
figure svg { display: block; width: 100%; height: auto; }
`;
