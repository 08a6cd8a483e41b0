// Third-party sources for benchmarks, fetched at bench time from the machine's own Debian
// archive (`apt-get source`), never committed. A deb-src entry is derived from the machine's
// deb entries when none exists.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface SourceTarball {
  readonly path: string;
  readonly md5: string;
}

const APT_SOURCES = '/etc/apt/sources.list.d';
const DERIVED = join(APT_SOURCES, 'slapmesh-deb-src.sources');

function hasDebSrc(): boolean {
  const files = ['/etc/apt/sources.list', ...(existsSync(APT_SOURCES) ? readdirSync(APT_SOURCES).map((f) => join(APT_SOURCES, f)) : [])];
  return files.some((f) => existsSync(f) && /^(?:deb-src\s|Types:.*\bdeb-src\b)/m.test(readFileSync(f, 'utf8')));
}

/** Adds `deb-src` twins of the machine's Debian `deb` entries (deb822 files), then updates the lists. */
function enableDebSrc(): void {
  const debian = join(APT_SOURCES, 'debian.sources');
  if (!existsSync(debian)) throw new Error('no deb-src entry and no /etc/apt/sources.list.d/debian.sources to derive one from');
  writeFileSync(DERIVED, readFileSync(debian, 'utf8').replace(/^Types: deb$/gm, 'Types: deb-src'));
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
}

/** The upstream tarball (`*.orig.tar.*`) of a Debian source package, downloaded once into a cache folder. */
export function debianOrigTarball(pkg: string): SourceTarball {
  const cache = process.env['SLAPMESH_BENCH_SOURCES'] ?? join(homedir(), '.cache', 'slapmesh', 'bench-sources');
  mkdirSync(cache, { recursive: true });
  const find = () => readdirSync(cache).find((f) => f.startsWith(`${pkg}_`) && /\.orig\.tar\.(gz|xz|bz2)$/.test(f));
  if (!find()) {
    if (!hasDebSrc()) enableDebSrc();
    execFileSync('apt-get', ['source', '--download-only', '-qq', pkg], { cwd: cache, stdio: 'inherit' });
  }
  const name = find();
  if (!name) throw new Error(`apt-get source ${pkg} gave no .orig tarball in ${cache}`);
  const path = join(cache, name);
  return { path, md5: createHash('md5').update(readFileSync(path)).digest('hex') };
}
