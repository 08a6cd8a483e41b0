// One Plot of a simulation report as a self-contained inline SVG (design.md §9): axes with nice ticks and
// labels, one colour per series with a legend, drawn as `line`, `step` or `bars` (see Plot in types.ts).
// No fonts can be measured outside a browser, so text widths are estimated from character counts.
import type { Plot, Series } from './types.js';

/** Tableau 10: distinct, readable on white, and still tellable apart by most colour-blind readers. */
export const SERIES_COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'] as const;

const WIDTH = 640;
const DATA_HEIGHT = 240;
const TOP = 44; // the title
const RIGHT = 32; // room for the last x tick label, centred on the axis end
const FONT_SIZE = 12;
const CHAR_WIDTH = 7; // a generous average advance of a 12 px sans-serif glyph
const LEGEND_ROW = 18;
const MARKERS_UP_TO = 40; // points per series; beyond, markers only clutter the line
/** Values beyond this are clamped, so that spans and coordinates stay finite. */
const LARGEST = 1e300;

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for XML/HTML content and quoted attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

export function seriesColour(index: number): string {
  return SERIES_COLOURS[index % SERIES_COLOURS.length] ?? SERIES_COLOURS[0];
}

export function renderPlot(plot: Plot): string {
  const series = plot.series.map(finitePoints);
  const bars = plot.kind === 'bars';
  const barWidth = bars ? bucketWidth(series) : 0;
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y));
  const xExtent = extent(xs.concat(bars ? xs.map((x) => x + barWidth) : []), false);
  const yExtent = extent(ys, bars || zeroIsNear(ys));

  const yAxis = bestAxis(yExtent, DATA_HEIGHT, () => FONT_SIZE * 3);
  const yLabels = yAxis.ticks.map(tickFormatter(yAxis));
  const left = 28 + Math.max(3, ...yLabels.map((l) => l.length)) * CHAR_WIDTH + 8;
  const dataWidth = WIDTH - left - RIGHT;
  const xAxis = bestAxis(xExtent, dataWidth, (labels) => Math.max(...labels.map((l) => l.length)) * CHAR_WIDTH + 16);

  const frame: Frame = {
    left,
    top: TOP,
    width: dataWidth,
    height: DATA_HEIGHT,
    x: (v) => left + ((v - xAxis.min) / (xAxis.max - xAxis.min)) * dataWidth,
    y: (v) => TOP + DATA_HEIGHT - ((v - yAxis.min) / (yAxis.max - yAxis.min)) * DATA_HEIGHT,
  };
  const legend = legendLayout(series, left, TOP + DATA_HEIGHT + 52);
  const height = legend.bottom + 8;

  const drawn = series.map((s, i) =>
    bars ? drawBars(s, i, series.length, barWidth, frame) : drawLine(s, i, plot.kind === 'step', frame));
  const empty = xs.length === 0
    ? `<text x="${n(left + dataWidth / 2)}" y="${n(TOP + DATA_HEIGHT / 2)}" text-anchor="middle" fill="#777">no data</text>`
    : '';
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" class="plot" data-plot="${escapeXml(plot.id)}" width="${WIDTH}" height="${n(height)}" viewBox="0 0 ${WIDTH} ${n(height)}" font-family="system-ui, sans-serif" font-size="${FONT_SIZE}">`,
    `<title>${escapeXml(plot.title)}</title>`,
    `<rect width="${WIDTH}" height="${n(height)}" fill="#fff"/>`,
    `<text x="${n(WIDTH / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="600">${escapeXml(shorten(plot.title, 70))}</text>`,
    drawAxes(xAxis, yAxis, yLabels, frame, axisLabel(plot.x, xAxis), axisLabel(plot.y, yAxis)),
    ...drawn,
    empty,
    legend.svg,
    '</svg>',
  ].filter(Boolean).join('\n');
}

interface Frame {
  left: number;
  top: number;
  width: number;
  height: number;
  x: (value: number) => number;
  y: (value: number) => number;
}

interface Axis {
  min: number;
  max: number;
  step: number;
  ticks: number[];
}

/** A coordinate for the SVG: one decimal is below a pixel, and never NaN or Infinity. */
function n(value: number): string {
  if (!Number.isFinite(value)) return '0';
  const rounded = Math.round(value * 10) / 10;
  return String(rounded === 0 ? 0 : rounded);
}

/** The series without points a plot cannot place (NaN, ±Infinity), extremes clamped, in x order. */
function finitePoints(series: Series): Series {
  const clamp = (v: number) => Math.max(-LARGEST, Math.min(LARGEST, v));
  const points = series.points
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
    .map(([x, y]): [number, number] => [clamp(x), clamp(y)])
    .sort((a, b) => a[0] - b[0]);
  return { name: series.name, points };
}

/** The width of one histogram bucket: the smallest gap between distinct x values (1 when there is none). */
function bucketWidth(series: Series[]): number {
  const xs = [...new Set(series.flatMap((s) => s.points.map(([x]) => x)))].sort((a, b) => a - b);
  let gap = Infinity;
  for (let i = 1; i < xs.length; i++) gap = Math.min(gap, xs[i]! - xs[i - 1]!);
  return Number.isFinite(gap) && gap > 0 ? gap : 1;
}

/** Counts and ratios read best from zero; a narrow band far from zero (timestamps) does not. */
function zeroIsNear(values: number[]): boolean {
  if (values.length === 0) return true;
  const min = Math.min(...values);
  const max = Math.max(...values);
  return (min >= 0 && min <= max / 2) || (max <= 0 && max >= min / 2);
}

function extent(values: number[], withZero: boolean): { min: number; max: number } {
  let min = values.length ? Math.min(...values) : 0;
  let max = values.length ? Math.max(...values) : 1;
  if (withZero) {
    min = Math.min(min, 0);
    max = Math.max(max, 0);
  }
  // A flat extent (one point, all zeros, or a span below float precision) gets room around it.
  if (max - min <= Math.abs(max) * 1e-9) {
    if (withZero) return { min: 0, max: 1 }; // flat with zero included: all values are 0
    const pad = Math.abs(max) * 0.1 || 1;
    return { min: min - pad, max: max + pad };
  }
  return { min, max };
}

/** A step of 1, 2 or 5 × 10^k near `rough`. */
function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

/** Drops float noise: 0.30000000000000004 → 0.3, -0 → 0. */
function clean(value: number): number {
  const rounded = Number(value.toPrecision(12));
  return rounded === 0 ? 0 : rounded;
}

function niceAxis(range: { min: number; max: number }, tickCount: number): Axis {
  const step = niceStep((range.max - range.min) / tickCount);
  const first = Math.floor(range.min / step + 1e-9);
  const last = Math.ceil(range.max / step - 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(clean(i * step));
  return { min: clean(first * step), max: clean(last * step), step, ticks };
}

/** The axis with the most ticks (up to 8) whose labels each get `room(labels)` pixels of `length`. */
function bestAxis(range: { min: number; max: number }, length: number, room: (labels: string[]) => number): Axis {
  let axis = niceAxis(range, 2);
  for (let count = 8; count >= 2; count--) {
    const candidate = niceAxis(range, count);
    const labels = candidate.ticks.map(tickFormatter(candidate));
    if (candidate.ticks.length * room(labels) <= length) return candidate;
    axis = candidate;
  }
  return axis;
}

const SI_PREFIXES: readonly [number, string][] = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];

/**
 * Where an axis spans a sliver of its magnitude (timestamps), ticks show the distance from its start, which
 * the axis title then names; otherwise every tick would read the same leading digits.
 */
function tickOffset(axis: Axis): number {
  const largest = Math.max(Math.abs(axis.min), Math.abs(axis.max));
  return axis.max - axis.min < largest / 1000 ? axis.min : 0;
}

/** Tick labels with as many decimals as the step needs: 0.25, 1.5k, 20M, 3e-5, +200 (from an offset). */
function tickFormatter(axis: Axis): (value: number) => string {
  const offset = tickOffset(axis);
  if (offset !== 0) {
    const relative = tickFormatter({ ...axis, min: 0, max: clean(axis.max - offset) });
    return (v) => (v === offset ? '0' : `+${relative(clean(v - offset))}`);
  }
  const largest = Math.max(Math.abs(axis.min), Math.abs(axis.max));
  const decimalsFor = (step: number) => Math.min(6, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
  if (largest >= 1e15 || largest < 1e-3) {
    const digits = Math.min(6, Math.max(0, Math.floor(Math.log10(largest)) - Math.floor(Math.log10(axis.step))));
    return (v) => (v === 0 ? '0' : v.toExponential(digits).replace('e+', 'e'));
  }
  if (largest >= 1e4) {
    const [divisor, prefix] = SI_PREFIXES.find(([d]) => largest >= d) ?? [1e3, 'k'];
    const decimals = decimalsFor(axis.step / divisor);
    return (v) => (v === 0 ? '0' : `${(v / divisor).toFixed(decimals)}${prefix}`);
  }
  const decimals = decimalsFor(axis.step);
  return (v) => v.toFixed(decimals);
}

/** Text cut to `max` characters so it stays inside the picture (the <title> keeps it whole). */
function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

function axisLabel(axis: { label: string; unit?: string }, ticks: Axis): string {
  const label = axis.unit ? `${axis.label} (${axis.unit})` : axis.label;
  const offset = tickOffset(ticks);
  return offset === 0 ? label : `${label}, from ${offset}`;
}

function drawAxes(xAxis: Axis, yAxis: Axis, yLabels: string[], frame: Frame, xTitle: string, yTitle: string): string {
  const bottom = frame.top + frame.height;
  const xFormat = tickFormatter(xAxis);
  const parts: string[] = ['<g class="axes" stroke-width="1">'];
  yAxis.ticks.forEach((tick, i) => {
    const y = n(frame.y(tick));
    parts.push(`<line x1="${n(frame.left)}" x2="${n(frame.left + frame.width)}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${n(frame.left - 6)}" y="${y}" dy="0.32em" text-anchor="end" fill="#333">${escapeXml(yLabels[i] ?? '')}</text>`);
  });
  for (const tick of xAxis.ticks) {
    const x = n(frame.x(tick));
    parts.push(`<line x1="${x}" x2="${x}" y1="${n(bottom)}" y2="${n(bottom + 5)}" stroke="#555"/>`);
    parts.push(`<text x="${x}" y="${n(bottom + 18)}" text-anchor="middle" fill="#333">${escapeXml(xFormat(tick))}</text>`);
  }
  parts.push(`<path d="M${n(frame.left)} ${n(frame.top)}V${n(bottom)}H${n(frame.left + frame.width)}" fill="none" stroke="#555"/>`);
  parts.push(`<text class="x-label" x="${n(frame.left + frame.width / 2)}" y="${n(bottom + 38)}" text-anchor="middle" fill="#111">${escapeXml(xTitle)}</text>`);
  const middle = n(frame.top + frame.height / 2);
  parts.push(`<text class="y-label" x="16" y="${middle}" transform="rotate(-90 16 ${middle})" text-anchor="middle" fill="#111">${escapeXml(yTitle)}</text>`);
  parts.push('</g>');
  return parts.join('\n');
}

function drawLine(series: Series, index: number, step: boolean, frame: Frame): string {
  const colour = seriesColour(index);
  const open = `<g class="series" data-series="${escapeXml(series.name)}" fill="none" stroke="${colour}"><title>${escapeXml(series.name)}</title>`;
  const commands: string[] = [];
  let previousY: string | undefined;
  for (const [x, y] of series.points) {
    const px = n(frame.x(x));
    const py = n(frame.y(y));
    if (previousY === undefined) commands.push(`M${px} ${py}`);
    else if (step) commands.push(`H${px}V${py}`); // hold the previous value until this point
    else commands.push(`L${px} ${py}`);
    previousY = py;
  }
  const path = series.points.length > 1 ? `<path d="${commands.join('')}" stroke-width="2" stroke-linejoin="round"/>` : '';
  const markers = series.points.length <= MARKERS_UP_TO
    ? series.points.map(([x, y]) => `<circle cx="${n(frame.x(x))}" cy="${n(frame.y(y))}" r="${series.points.length === 1 ? 4 : 2.5}" fill="${colour}" stroke="none"/>`)
    : [];
  return [open, path, ...markers, '</g>'].filter(Boolean).join('\n');
}

/** One bar per point over [x, x + bucket width); series side by side within a bucket. */
function drawBars(series: Series, index: number, seriesCount: number, width: number, frame: Frame): string {
  const colour = seriesColour(index);
  const rects = series.points.map(([x, y]) => {
    const start = frame.x(x);
    const bucket = frame.x(x + width) - start;
    const pad = Math.min(bucket * 0.1, 4);
    const barWidth = Math.max((bucket - 2 * pad) / seriesCount, 0.5);
    const top = Math.min(frame.y(y), frame.y(0));
    const height = Math.abs(frame.y(y) - frame.y(0));
    return `<rect x="${n(start + pad + index * barWidth)}" y="${n(top)}" width="${n(barWidth)}" height="${n(height)}"/>`;
  });
  return [`<g class="series" data-series="${escapeXml(series.name)}" fill="${colour}"><title>${escapeXml(series.name)}</title>`, ...rects, '</g>'].join('\n');
}

/** Legend entries left to right, wrapped onto as many rows as the width needs. */
function legendLayout(series: Series[], left: number, top: number): { svg: string; bottom: number } {
  if (series.length === 0) return { svg: '', bottom: top - LEGEND_ROW };
  const parts: string[] = ['<g class="legend">'];
  let x = left;
  let y = top;
  series.forEach((s, i) => {
    const text = shorten(s.points.length ? s.name : `${s.name} (no data)`, Math.floor((WIDTH - RIGHT - left - 36) / CHAR_WIDTH));
    const width = 18 + text.length * CHAR_WIDTH + 18;
    if (x > left && x + width > WIDTH - RIGHT) {
      x = left;
      y += LEGEND_ROW;
    }
    parts.push(`<rect x="${n(x)}" y="${n(y - 9)}" width="12" height="12" rx="2" fill="${seriesColour(i)}"/>`);
    parts.push(`<text x="${n(x + 18)}" y="${n(y + 1)}" fill="#222">${escapeXml(text)}</text>`);
    x += width;
  });
  parts.push('</g>');
  return { svg: parts.join('\n'), bottom: y + 6 };
}
