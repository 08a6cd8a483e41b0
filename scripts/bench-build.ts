// npm run bench:build — the install engine on real third-party C builds:
//   1. a cold build of a realistic release (SQLite from Debian's sources, configure + make),
//      then a rerun that changes nothing (target: < 2% of the cold build);
//   2. a profile of independent parts (Lua from Debian's sources, four times) with -j 2
//      against -j 1 (target: >= 1.6x on 2 cores).
// Sources are fetched with `apt-get source` at bench time (see scripts/debian-sources.ts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { install } from '../engine/install/installer.js';
import { debianOrigTarball, type SourceTarball } from './debian-sources.js';

async function timeInstall(dir: string, jobs = 1): Promise<number> {
  const start = performance.now();
  await install({ configFile: join(dir, 'buildout.cfg'), cwd: dir, jobs });
  return (performance.now() - start) / 1000;
}

function sqliteProfile(src: SourceTarball): string {
  return `[buildout]
parts = sqlite3

[sqlite3]
recipe = slapos.recipe.cmmi
url = file://${src.path}
md5sum = ${src.md5}
configure-options =
  --disable-tcl
  --disable-static
`;
}

function luaProfile(src: SourceTarball, copies: number): string {
  const names = Array.from({ length: copies }, (_, i) => `lua-${i + 1}`);
  return `[buildout]\nparts = ${names.join(' ')}\n` + names.map((name) => `
[${name}]
recipe = slapos.recipe.cmmi
url = file://${src.path}
md5sum = ${src.md5}
configure-command = true
make-options = linux
make-targets = install INSTALL_TOP=@@LOCATION@@
`).join('');
}

function withDir<T>(profile: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'slapmesh-bench-build-'));
  writeFileSync(join(dir, 'buildout.cfg'), profile);
  return body(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

async function main(): Promise<void> {
  console.log('bench:build');
  const sqlite = debianOrigTarball('sqlite3');
  const [cold, rerun] = await withDir(sqliteProfile(sqlite), async (dir) => [await timeInstall(dir), await timeInstall(dir)]);
  console.log(`  SQLite (${sqlite.path.split('/').pop()}), configure + make + make install:`);
  console.log(`    cold build        ${cold.toFixed(1)} s`);
  console.log(`    no-op rerun       ${(rerun * 1000).toFixed(0)} ms  = ${((rerun / cold) * 100).toFixed(2)}% of the cold build (target < 2%)`);

  const lua = debianOrigTarball('lua5.4');
  const copies = 4;
  const serial = await withDir(luaProfile(lua, copies), (dir) => timeInstall(dir, 1));
  const parallel = await withDir(luaProfile(lua, copies), (dir) => timeInstall(dir, 2));
  console.log(`  ${copies} independent Lua parts (${lua.path.split('/').pop()}):`);
  console.log(`    -j 1              ${serial.toFixed(1)} s`);
  console.log(`    -j 2              ${parallel.toFixed(1)} s  = ${(serial / parallel).toFixed(2)}x faster (target >= 1.6x on 2 cores)`);
}

await main();
