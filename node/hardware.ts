// What this machine offers, for the node's advert: probed every few seconds, so what cannot change between
// two probes (CPUs, total memory, platform) is read once per process.
import { readdirSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import * as os from 'node:os';

export interface Hardware {
  cpus: number;
  cpuModel: string;
  /** Bytes this process may use: the machine's memory, or less under a cgroup limit. */
  memory: number;
  freeMemory: number;
  /** Free bytes of the data directory's filesystem, as an unprivileged user may use them. */
  disk: number;
  /** node's os.arch(): x64, arm64… */
  arch: string;
  /** The build cache's platform key: `${os.platform()}-${arch}-${libc}`, e.g. linux-x64-glibc2.36. */
  os: string;
  /** glibc2.36, musl or unknown. */
  libc: string;
  load: [number, number, number];
  partitions: { total: number; free: number };
}

interface FixedFacts {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memory: number;
  readonly arch: string;
  readonly os: string;
  readonly libc: string;
}

let fixed: FixedFacts | undefined;

/** OS, architecture and libc (e.g. linux-x64-glibc2.36): what a build is for, in cache keys. */
export function platform(): string {
  fixed ??= probeFixedFacts();
  return fixed.os;
}

export async function probeHardware(dataDir: string, partitions: { total: number; used: number }): Promise<Hardware> {
  fixed ??= probeFixedFacts();
  const fs = await statfs(dataDir);
  const [load1 = 0, load5 = 0, load15 = 0] = os.loadavg();
  return {
    ...fixed,
    // Free memory as this process sees it (MemAvailable, within a cgroup limit if any).
    freeMemory: process.availableMemory(),
    disk: fs.bavail * fs.bsize,
    load: [load1, load5, load15],
    partitions: { total: partitions.total, free: Math.max(0, partitions.total - partitions.used) },
  };
}

function probeFixedFacts(): FixedFacts {
  const arch = os.arch();
  const libc = detectLibc();
  // 0 when unknown, a huge number when unlimited.
  const limit = process.constrainedMemory();
  const total = os.totalmem();
  return {
    // What this process may run on (CPU affinity), which may be fewer than the machine has.
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() || 'unknown',
    memory: limit > 0 && limit < total ? limit : total,
    arch,
    os: `${os.platform()}-${arch}-${libc}`,
    libc,
  };
}

/**
 * The C library binaries are linked against, part of the cache key: a build for glibc does not run on musl,
 * nor on an older glibc. The process report knows the glibc this node runs with (a millisecond, once);
 * musl has no version to ask for, so its loader's presence is the sign (checked second: glibc systems
 * sometimes carry a musl loader too).
 */
function detectLibc(): string {
  if (os.platform() !== 'linux') return 'unknown';
  const glibc = glibcVersion();
  if (glibc !== undefined) return `glibc${glibc}`;
  let lib: string[] = [];
  try {
    lib = readdirSync('/lib');
  } catch {
    // no /lib: neither
  }
  return lib.some((name) => name.startsWith('ld-musl-')) ? 'musl' : 'unknown';
}

function glibcVersion(): string | undefined {
  // Without network details: they may cost a DNS lookup per open socket (Node ≥ 22.13; untyped yet).
  const report: NodeJS.ProcessReport & { excludeNetwork?: boolean } = process.report;
  const excludeNetwork = report.excludeNetwork;
  report.excludeNetwork = true;
  try {
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: unknown } }).header;
    const version = header?.glibcVersionRuntime;
    return typeof version === 'string' && /^\d+\.\d+$/.test(version) ? version : undefined;
  } finally {
    report.excludeNetwork = excludeNetwork;
  }
}
