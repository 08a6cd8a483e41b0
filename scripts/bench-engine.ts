// npm run bench:engine — how fast `buildout resolve` is, in-process and as a whole CLI run,
// against the reference zc.buildout (design.md §3) measured in the same run when it is set up.
//
//   SLAPOS_DIR=<SlapOS checkout>   profiles to resolve: software/helloworld and software/erp5
//                                  (otherwise a generated profile of ~250 files, ~500 sections)
//   ZC_BUILDOUT_SRC=<zc.buildout src/>  times scripts/reference/buildout_resolve.py too
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ConfigReader } from '../engine/config/loader.js';
import { resolveConfiguration } from '../engine/config/resolve.js';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(projectRoot, 'dist', 'cli', 'bin.js');
const reference = join(projectRoot, 'scripts', 'reference', 'buildout_resolve.py');

interface Profile {
  name: string;
  path: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeCommand(command: string, args: string[], runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
    times.push(performance.now() - start);
    if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr}`);
  }
  return median(times);
}

/** A profile shaped like a big SlapOS release: stacks and components extending each other, macros everywhere. */
function generateProfile(): Profile {
  const root = mkdtempSync(join(tmpdir(), 'slapmesh-bench-'));
  const files = 250;
  for (let i = 0; i < files; i++) {
    const deps = [i + 1, i + 7, i + 31].filter((j) => j < files).map((j) => `../c${j}/buildout.cfg`);
    const lines = [`[buildout]`, `extends = ${deps.join('\n  ')}`, `parts += c${i}`, ``,
      `[c${i}]`, `<= macro-${i % 5}`, `url = \${:_profile_base_location_}/src-${i}.tar.gz`, `version = 1.${i}`,
      `configure-options += --with-c${i + 1}=\${c${Math.min(i + 1, files - 1)}:location}`, ``,
      `[c${i}-config]`, `path = \${c${i}:location}/etc`, `name = \${:_buildout_section_name_}`, ``];
    if (i < 5) lines.push(`[macro-${i}]`, `recipe = slapos.recipe.cmmi`, `shared = true`, `configure-options =`, `  --prefix=\${:location}`, ``);
    mkdirSync(join(root, `c${i}`), { recursive: true });
    writeFileSync(join(root, `c${i}`, 'buildout.cfg'), lines.join('\n'));
  }
  writeFileSync(join(root, 'software.cfg'), '[buildout]\nextends = c0/buildout.cfg\nparts = c0\n');
  return { name: 'generated (250 files)', path: join(root, 'software.cfg') };
}

function profiles(): Profile[] {
  const slapos = process.env['SLAPOS_DIR'];
  if (slapos) {
    const found = ['helloworld', 'erp5'].map((n) => ({ name: n, path: join(slapos, 'software', n, 'software.cfg') })).filter((p) => existsSync(p.path));
    if (found.length) return found;
    console.log(`SLAPOS_DIR=${slapos} has no software/helloworld or software/erp5; using a generated profile`);
  }
  return [generateProfile()];
}

async function main(): Promise<void> {
  const runs = Number(process.env['BENCH_RUNS'] ?? 7);
  const refSrc = process.env['ZC_BUILDOUT_SRC'];
  console.log(`bench:engine (median of ${runs} runs)`);
  const baseline = timeCommand(process.execPath, [cli, '--version'], runs);
  console.log(`  slapmesh --version as a CLI run: ${baseline.toFixed(0)} ms (the baseline a CLI run is compared with)`);
  const rows: string[][] = [['profile', 'sections', 'in-process', 'CLI run', 'CLI - --version', 'reference', 'reference / CLI']];
  for (const profile of profiles()) {
    const reader = new ConfigReader();
    const first = await resolveConfiguration({ configFile: profile.path, reader });
    const sections = Object.keys(first.sections).length + Object.keys(first.errors).length;
    const inProcess: number[] = [];
    for (let i = 0; i < Math.max(runs, 20); i++) {
      const start = performance.now();
      await resolveConfiguration({ configFile: profile.path, reader });
      inProcess.push(performance.now() - start);
    }
    const cliRun = timeCommand(process.execPath, [cli, 'buildout', 'resolve', '-c', profile.path, '--json'], runs);
    let ref = '-';
    let ratio = '-';
    if (refSrc) {
      const t = timeCommand('python3', [reference, '-c', profile.path], Math.min(runs, 3));
      ref = `${t.toFixed(0)} ms`;
      ratio = `${(t / cliRun).toFixed(1)}x`;
    }
    rows.push([profile.name, String(sections), `${median(inProcess).toFixed(1)} ms`, `${cliRun.toFixed(0)} ms`,
      `${(cliRun - baseline).toFixed(0)} ms`, ref, ratio]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) console.log(`  ${row.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`);
  if (!refSrc) console.log('  (set ZC_BUILDOUT_SRC to a zc.buildout checkout\'s src/ to time the reference in the same run)');
}

await main();
