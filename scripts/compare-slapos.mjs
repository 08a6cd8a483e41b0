#!/usr/bin/env node
// Compare our resolver with the reference (patched upstream zc.buildout) on
// every software/*/software.cfg of a SlapOS tree.
//
//   node scripts/compare-slapos.mjs SLAPOS_DIR [--ref-dir DIR] [--cli FILE] [--jobs N]
//
// --ref-dir: cached reference outputs, DIR/<software>.json (or .err when the
// reference failed fatally), made with the SAME_PYTHON assignment below. Without it the reference runs live:
// python3 scripts/reference/buildout_resolve.py, with ZC_BUILDOUT_SRC set.
// Prints one line per profile and "N/M profiles identical"; exits 0 unless
// the usage is wrong.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const IGNORED = { buildout: ['executable', 'python'], versions: ['zc.buildout'] };
const MAX_SHOWN = 5;
// zc.buildout's default executable is its own interpreter's path; both sides get the same one
// (cached --ref-dir outputs must be made with it too) so values built from it compare.
const SAME_PYTHON = 'buildout:executable=/usr/bin/python3';

function usage(message) {
  if (message) console.error(message);
  console.error('usage: node scripts/compare-slapos.mjs SLAPOS_DIR [--ref-dir DIR] [--cli FILE] [--jobs N]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { slapos: undefined, refDir: undefined, cli: undefined, jobs: availableParallelism() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => argv[++i] ?? usage(`${arg} needs a value`);
    if (arg === '--ref-dir') opts.refDir = resolve(value());
    else if (arg === '--cli') opts.cli = resolve(value());
    else if (arg === '--jobs') opts.jobs = Math.max(1, Number(value()) || 1);
    else if (arg.startsWith('-') || opts.slapos) usage(`unexpected argument ${arg}`);
    else opts.slapos = resolve(arg);
  }
  if (!opts.slapos) usage();
  if (!existsSync(join(opts.slapos, 'software'))) usage(`${opts.slapos}/software not found`);
  if (!opts.refDir && !process.env.ZC_BUILDOUT_SRC) usage('give --ref-dir or set ZC_BUILDOUT_SRC');
  // The brief names dist/cli/index.js; package.json's bin is dist/cli/bin.js.
  opts.cli ??= ['dist/cli/index.js', 'dist/cli/bin.js'].map((p) => join(repo, p)).find(existsSync)
    ?? join(repo, 'dist/cli/index.js');
  return opts;
}

// Run a command; resolve to {json} on exit 0 with parsable output, else {fatal}.
function run(cmd, args, env) {
  return new Promise((done) => {
    execFile(cmd, args, { cwd: repo, env: { ...process.env, ...env }, maxBuffer: 1 << 30 },
      (error, stdout, stderr) => {
        if (error) return done({ fatal: firstLine(stderr) || error.message });
        try {
          done({ json: JSON.parse(stdout) });
        } catch {
          done({ fatal: `unparsable output: ${firstLine(stdout)}` });
        }
      });
  });
}

// The telling line of a failure: the first mentioning an error, else the first.
const firstLine = (text) => {
  const lines = String(text).trim().split('\n');
  return lines.find((l) => /error/i.test(l)) ?? lines[0] ?? '';
};

// The project pins Node 24 as a dev dependency; the machine's node may be older.
const nodeBin = existsSync(join(repo, 'node_modules/.bin/node')) ? join(repo, 'node_modules/.bin/node') : process.execPath;

function ours(opts, profile) {
  return run(nodeBin, [opts.cli, 'buildout', 'resolve', '-c', profile, SAME_PYTHON, '--json']);
}

function reference(opts, name, profile) {
  if (!opts.refDir) {
    return run('python3', [join(repo, 'scripts/reference/buildout_resolve.py'), '-c', profile, SAME_PYTHON]);
  }
  const json = join(opts.refDir, `${name}.json`);
  const err = join(opts.refDir, `${name}.err`);
  if (existsSync(json)) return Promise.resolve({ json: JSON.parse(readFileSync(json, 'utf8')) });
  if (existsSync(err)) return Promise.resolve({ fatal: firstLine(readFileSync(err, 'utf8')) || 'fatal' });
  return Promise.resolve({ fatal: `no reference in ${opts.refDir}` });
}

const show = (v) => {
  const s = v === undefined ? '<absent>' : JSON.stringify(v);
  return s.length > 100 ? `${s.slice(0, 97)}...` : s;
};

// List the differences between two run results, as display strings.
function differences(ra, rb) {
  if (ra.fatal || rb.fatal) {
    return ra.fatal && rb.fatal ? [] : [`fatal: ours=${show(ra.fatal ?? 'ok')} ref=${show(rb.fatal ?? 'ok')}`];
  }
  const [a, b] = [ra.json, rb.json];
  const out = [];
  const state = (r, name) => (name in (r.errors ?? {}) ? 'error' : name in (r.sections ?? {}) ? 'section' : '<absent>');
  const names = new Set([
    ...Object.keys(a.sections ?? {}), ...Object.keys(a.errors ?? {}),
    ...Object.keys(b.sections ?? {}), ...Object.keys(b.errors ?? {}),
  ]);
  for (const name of [...names].sort()) {
    const [sa, sb] = [state(a, name), state(b, name)];
    if (sa !== sb) {
      const msg = (r, s) => (s === 'error' ? `error(${show(r.errors[name])})` : s);
      out.push(`${name}: ours=${msg(a, sa)} ref=${msg(b, sb)}`);
      continue;
    }
    if (sa !== 'section') continue; // both failed: messages need not match
    const oa = a.sections[name];
    const ob = b.sections[name];
    const keys = new Set([...Object.keys(oa), ...Object.keys(ob)]);
    for (const key of [...keys].sort()) {
      if (IGNORED[name]?.includes(key) || oa[key] === ob[key]) continue;
      out.push(`${name}:${key}: ours=${show(oa[key])} ref=${show(ob[key])}`);
    }
  }
  return out;
}

// Run fn over items with at most `limit` in flight, keeping the order.
async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const opts = parseArgs(process.argv.slice(2));
const software = join(opts.slapos, 'software');
const names = readdirSync(software).filter((n) => existsSync(join(software, n, 'software.cfg'))).sort();
const lines = await pool(names, opts.jobs, async (name) => {
  const profile = join(software, name, 'software.cfg');
  const [a, b] = await Promise.all([ours(opts, profile), reference(opts, name, profile)]);
  const diffs = differences(a, b);
  if (diffs.length === 0) return { same: true, line: `${name}: match${a.fatal ? ' (both fatal)' : ''}` };
  const shown = diffs.slice(0, MAX_SHOWN).join(' | ');
  return { same: false, line: `${name}: ${diffs.length} difference(s): ${shown}` };
});
for (const { line } of lines) console.log(line);
console.log(`${lines.filter((l) => l.same).length}/${lines.length} profiles identical`);
