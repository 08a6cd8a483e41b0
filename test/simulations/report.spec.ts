import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';
import { formatMetric, formatTable, renderHtml, writeReport } from '../../simulations/report.js';
import { renderPlot, seriesColour } from '../../simulations/svg-plot.js';
import type { Plot } from '../../simulations/types.js';
import { removeTree } from '../helpers/files.js';
import { failingResult, sampleResult } from './sample-result.js';

/** Debian's package; SLAPMESH_CHROMIUM points elsewhere (or at nothing, to see the check skipped). */
const CHROMIUM = process.env.SLAPMESH_CHROMIUM ?? '/usr/bin/chromium';

function plot(kind: Plot['kind'], series: Plot['series']): Plot {
  return { id: `edge-${kind}`, title: `Edge ${kind}`, kind, x: { label: 'time', unit: 's' }, y: { label: 'value' }, series };
}

/** Every number in the SVG's coordinate attributes and path data. */
function coordinates(svg: string): string[] {
  const attributes = [...svg.matchAll(/\s(?:x|y|x1|x2|y1|y2|cx|cy|r|width|height)="([^"]*)"/g)].map((m) => m[1]!);
  const paths = [...svg.matchAll(/\sd="([^"]*)"/g)].flatMap((m) => m[1]!.split(/[MLHVZ ]+/).filter(Boolean));
  return [...attributes, ...paths];
}

function assertFiniteSvg(svg: string): void {
  assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
  for (const value of coordinates(svg)) {
    assert.ok(Number.isFinite(Number(value)), `coordinate ${value} is a finite number`);
    assert.match(value, /^-?\d+(\.\d)?$/, `coordinate ${value} has at most one decimal`);
  }
}

function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(pattern)].length;
}

describe('simulations/report', () => {
  describe('formatMetric', () => {
    it('shows ms whole, ratios to 3 significant digits, integers and strings as they are', () => {
      assert.equal(formatMetric('acceptedP95Ms', 231.77), '232');
      assert.equal(formatMetric('cacheHitRatio', 0.8333333), '0.833');
      assert.equal(formatMetric('convergenceSeconds', 6.35), '6.35');
      assert.equal(formatMetric('bytesFromPeers', 73400320), '73400320');
      assert.equal(formatMetric('allAdvertsKnown', true), 'true');
      assert.equal(formatMetric('slowestPeer', 'node-07'), 'node-07');
    });
  });

  describe('formatTable', () => {
    it('shows the verdict, every metric and every assertion, within 80 columns', () => {
      const result = sampleResult();
      const table = formatTable(result);
      const [headline] = table.split('\n');
      assert.match(headline!, /^churn: 12 nodes, 63\.5 s, 5\/5 assertions hold — PASS$/);
      for (const [name, value] of Object.entries(result.metrics)) {
        assert.match(table, new RegExp(`^  ${name} +${formatMetric(name, value)}$`, 'm'));
      }
      for (const a of result.assertions) assert.match(table, new RegExp(`^  ok    ${a.id} +\\S`, 'm'));
      for (const description of result.assertions.map((a) => a.description)) {
        const words = table.replace(/\s+/g, ' ');
        assert.ok(words.includes(description), `the table holds "${description}"`);
      }
      for (const line of table.split('\n')) assert.ok(line.length <= 80, `"${line}" fits in 80 columns`);
    });

    it('marks failing assertions and lists their first violations', () => {
      const table = formatTable(failingResult());
      assert.match(table, /— FAIL$/m);
      assert.match(table, /^  FAIL  capacity-respected +No node hosts/m);
      assert.match(table, /^ {8}- node-03 hosts 5 partitions, declared 4 <script>alert\("x"\)<\/script>$/m);
      assert.match(table, /^ {8}- node-05 hosts 3 partitions/m);
      assert.match(table, /^ {8}- node-06 hosts 2 partitions/m);
      assert.doesNotMatch(table, /node-07 hosts/);
      assert.match(table, /^ {8}… 4 more$/m);
    });

    it('keeps rows whole when values hold newlines and ids are long', () => {
      const result = sampleResult();
      result.assertions.push({ id: 'a-very-long-assertion-identifier-that-overflows-its-column', description: 'Holds.', ok: false, violations: ['first\nsecond'] });
      const table = formatTable(result);
      assert.match(table, /^  FAIL  a-very-long-assertion-identifier-that-overflows-its-column\n {35}Holds\.$/m);
      assert.match(table, /^ {8}- first second$/m);
    });
  });

  describe('renderPlot', () => {
    it('draws one SVG with a title, axes labels, and one group and legend entry per series', () => {
      for (const p of sampleResult().plots) {
        const svg = renderPlot(p);
        assert.equal(count(svg, /<svg /g), 1);
        assert.match(svg, /^<svg [^>]*role="img"/);
        assert.ok(svg.includes(`<title>${p.title}</title>`));
        for (const [axis, { label, unit }] of [['x', p.x], ['y', p.y]] as const) {
          const text = svg.match(new RegExp(`class="${axis}-label"[^>]*>([^<]*)<`))?.[1];
          assert.equal(text, unit ? `${label} (${unit})` : label);
        }
        assert.equal(count(svg, /<g class="series"/g), p.series.length);
        p.series.forEach((s, i) => {
          assert.match(svg, new RegExp(`<g class="series" data-series="${s.name}" fill="${p.kind === 'bars' ? seriesColour(i) : 'none'}"`));
          assert.ok(svg.includes(`>${s.name}</text>`), `legend for ${s.name}`);
        });
        if (p.kind === 'bars') assert.equal(count(svg, /<rect x=[^>]*\/>/g) - p.series.length, p.series[0]!.points.length);
        else assert.equal(count(svg, /<path d="M[^"]*" stroke-width="2"/g), p.series.length);
        assertFiniteSvg(svg);
      }
    });

    it('puts ticks on 1, 2, 5 × 10^k and labels huge and tiny values compactly', () => {
      const ticks = (svg: string) => [...svg.matchAll(/text-anchor="(?:end|middle)" fill="#333">([^<]*)</g)].map((m) => m[1]!);
      const convergence = ticks(renderPlot(sampleResult().plots[0]!));
      assert.ok(convergence.includes('0.0') && convergence.includes('1.0'), convergence.join(' '));
      const huge = ticks(renderPlot(plot('line', [{ name: 'bytes', points: [[0, 0], [1e9, 3.2e9]] }])));
      assert.ok(huge.includes('1.0G') || huge.includes('1G'), huge.join(' '));
      const tiny = ticks(renderPlot(plot('line', [{ name: 'tiny', points: [[0, 0], [1, 4e-6]] }])));
      assert.ok(tiny.some((t) => /^\de-6$/.test(t)), tiny.join(' '));
      const timestamps = renderPlot(plot('step', [{ name: 'ts', points: [[1.7e12, 1], [1.7e12 + 9000, 2]] }]));
      assert.ok(ticks(timestamps).includes('+2k'), ticks(timestamps).join(' '));
      assert.match(timestamps, /class="x-label"[^>]*>time \(s\), from 1700000000000</);
      for (const label of [...convergence, ...huge, ...tiny]) assert.ok(!/\d{7}/.test(label), `"${label}" is compact`);
    });

    it('draws edge cases with finite coordinates only', () => {
      const cases: Plot['series'][] = [
        [],
        [{ name: 'empty', points: [] }],
        [{ name: 'one', points: [[3, 7]] }],
        [{ name: 'zero at zero', points: [[0, 0]] }],
        [{ name: 'zeros', points: [[0, 0], [1, 0], [2, 0]] }],
        [{ name: 'same x', points: [[5, 1], [5, 2]] }],
        [{ name: 'negative', points: [[-10, -3], [10, 2]] }],
        [{ name: 'huge', points: [[0, 1e-3], [1e12, 1e15], [2e12, 1e300]] }],
        [{ name: 'extreme', points: [[-Number.MAX_VALUE, Number.MAX_VALUE], [Number.MAX_VALUE, -Number.MAX_VALUE]] }],
        [{ name: 'timestamps', points: [[1.7e12, 100], [1.7e12 + 1, 101]] }],
        [{ name: 'not numbers', points: [[NaN, 1], [1, Infinity], [2, 3]] }],
        [{ name: 'a', points: [[0, 1]] }, { name: 'b', points: [] }, { name: 'c', points: [[0, 2], [1, 3]] }],
      ];
      for (const kind of ['line', 'step', 'bars'] as const) {
        for (const series of cases) {
          const svg = renderPlot(plot(kind, series));
          assert.equal(count(svg, /<g class="series"/g), series.length, `${kind}: ${JSON.stringify(series)}`);
          assertFiniteSvg(svg);
          if (series.every((s) => s.points.length === 0)) assert.match(svg, />no data</);
        }
      }
    });

    it('escapes names and labels', () => {
      const svg = renderPlot({ ...plot('line', [{ name: '<b>"a" & \'b\'</b>', points: [[0, 1], [1, 2]] }]), title: '<script>x</script>' });
      assert.doesNotMatch(svg, /<script|<b>/);
      assert.ok(svg.includes('&lt;script&gt;x&lt;/script&gt;'));
      assert.ok(svg.includes('data-series="&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"'));
    });
  });

  describe('renderHtml', () => {
    it('is self-contained: no script, no external URL, one SVG per plot', () => {
      const result = failingResult();
      const html = renderHtml(result);
      assert.match(html, /^<!doctype html>/);
      assert.doesNotMatch(html, /<script/i);
      assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'));
      assert.ok(html.includes('declared 2 &amp; said &#39;fine&#39;'));
      const urls = [...html.matchAll(/(?:https?:)?\/\/[\w.-]+/g)].map((m) => m[0]).filter((u) => u !== 'http://www.w3.org');
      assert.deepEqual(urls, []);
      assert.equal(count(html, /<svg /g), result.plots.length);
      assert.match(html, /class="verdict fail">FAIL</);
      assert.match(html, /<details><summary>7 violations<\/summary>/);
      for (const a of result.assertions) assert.ok(html.includes(`<code>${a.id}</code>`));
      for (const name of Object.keys(result.metrics)) assert.ok(html.includes(`<code>${name}</code>`));
    });
  });

  describe('writeReport', () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'slapmesh-report-'))));
    afterEach(() => removeTree(dir));

    it('creates the folder and writes report.json and report.html, nothing else', async () => {
      const result = failingResult();
      const out = join(dir, 'nested', 'report');
      const written = await writeReport(out, result);
      assert.deepEqual(written, { json: join(out, 'report.json'), html: join(out, 'report.html') });
      assert.deepEqual(JSON.parse(readFileSync(written.json, 'utf8')), result);
      assert.equal(readFileSync(written.html, 'utf8'), renderHtml(result));
      assert.deepEqual(readdirSync(out).sort(), ['report.html', 'report.json']);
      await writeReport(out, sampleResult()); // replaces both
      assert.deepEqual(JSON.parse(readFileSync(written.json, 'utf8')), sampleResult());
      assert.deepEqual(readdirSync(out).sort(), ['report.html', 'report.json']);
    });
  });

  describe('in a real browser (headless Chromium)', function () {
    this.timeout(120_000);
    let dir: string | undefined;
    after(() => dir && removeTree(dir));

    it('renders every plot (needs /usr/bin/chromium: apt-get install -y chromium)', async function () {
      // Skipped, never passed, without a browser: mocha lists it as pending under this title.
      if (!existsSync(CHROMIUM)) this.skip();
      dir = mkdtempSync(join(tmpdir(), 'slapmesh-report-browser-'));
      const withPlots = await writeReport(join(dir, 'with'), sampleResult());
      const withoutPlots = await writeReport(join(dir, 'without'), { ...sampleResult(), plots: [] });

      const dom = await chromium(dir, ['--dump-dom', pathToFileURL(withPlots.html).href]);
      assert.equal(count(dom, /<svg /g), 4, 'the DOM holds the four SVGs');
      for (const p of sampleResult().plots) assert.ok(dom.includes(`<title>${p.title}</title>`), `the DOM holds plot ${p.id}`);
      assert.equal(count(dom, /<g class="series"/g), 5);

      const shot = await screenshot(dir, withPlots.html, 'with.png');
      const blank = await screenshot(dir, withoutPlots.html, 'without.png');
      assert.equal(shot.width, 1200);
      assert.equal(shot.height, 2000);
      // The series' colours are used by the plots only: many such pixels with plots, none without.
      for (const colour of [seriesColour(0), seriesColour(1)]) {
        assert.ok(pixelsNear(shot, colour) > 300, `${colour} drawn: ${pixelsNear(shot, colour)} pixels`);
        assert.equal(pixelsNear(blank, colour), 0, `${colour} absent without plots`);
      }
      const ink = { with: inkedPixels(shot), without: inkedPixels(blank) };
      assert.ok(ink.with > ink.without + 20_000, `the plots add ink to the page: ${JSON.stringify(ink)}`);
    });
  });
});

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--hide-scrollbars'];

/** Runs headless Chromium with a profile of its own (fresh, so no state leaks between runs) and returns stdout. */
function chromium(dir: string, args: string[]): Promise<string> {
  const profile = mkdtempSync(join(dir, 'profile-'));
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => (error ? reject(new Error(`chromium failed: ${error.message}\n${stderr}`)) : resolve(stdout)));
  });
}

async function screenshot(dir: string, html: string, name: string): Promise<Image> {
  const file = join(dir, name);
  await chromium(dir, [`--screenshot=${file}`, '--window-size=1200,2000', pathToFileURL(html).href]);
  return decodePng(readFileSync(file));
}

interface Image {
  width: number;
  height: number;
  /** RGBA, 4 bytes a pixel. */
  pixels: Uint8Array;
}

/** Enough PNG for Chromium's screenshots: 8-bit RGB or RGBA, not interlaced. */
function decodePng(png: Buffer): Image {
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], 'a PNG signature');
  let offset = 8;
  let header: Buffer | undefined;
  const data: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const body = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') header = body;
    if (type === 'IDAT') data.push(body);
    offset += 12 + length;
  }
  assert.ok(header, 'an IHDR chunk');
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  const [depth, colourType, , , interlace] = [...header.subarray(8, 13)];
  assert.ok(depth === 8 && (colourType === 2 || colourType === 6) && interlace === 0, `PNG kind ${depth}/${colourType}/${interlace}`);
  const channels = colourType === 6 ? 4 : 3;
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * channels;
  const rows = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const left = i >= channels ? rows[y * stride + i - channels]! : 0;
      const up = y > 0 ? rows[(y - 1) * stride + i]! : 0;
      const upLeft = y > 0 && i >= channels ? rows[(y - 1) * stride + i - channels]! : 0;
      const predictor = [0, left, up, (left + up) >> 1, paeth(left, up, upLeft)][filter];
      assert.ok(predictor !== undefined, `PNG filter ${filter}`);
      rows[y * stride + i] = (line[i]! + predictor) & 0xff;
    }
  }
  const pixels = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < 3; c++) pixels[p * 4 + c] = rows[p * channels + c]!;
    pixels[p * 4 + 3] = channels === 4 ? rows[p * 4 + 3]! : 255;
  }
  return { width, height, pixels };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Pixels within a small distance of `#rrggbb` (antialiasing blends edges, the body of a stroke keeps it). */
function pixelsNear(image: Image, colour: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16)) as [number, number, number];
  let found = 0;
  for (let p = 0; p < image.pixels.length; p += 4) {
    if (Math.abs(image.pixels[p]! - r) + Math.abs(image.pixels[p + 1]! - g) + Math.abs(image.pixels[p + 2]! - b) <= 24) found++;
  }
  return found;
}

/** Pixels clearly darker than the page's background. */
function inkedPixels(image: Image): number {
  let inked = 0;
  for (let p = 0; p < image.pixels.length; p += 4) {
    if (image.pixels[p]! + image.pixels[p + 1]! + image.pixels[p + 2]! < 600) inked++;
  }
  return inked;
}
