// Downloads for recipes, after zc.buildout's Download (research/buildout.md §5.3): local paths and `file:`
// URLs are used in place; http(s) files go through the download cache (or a temporary folder). Every file
// is verified against the checksum it is given, and written atomically (a temporary file, then a rename).
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecipeError, type BuildoutSettings, type Checksum, type PartLog } from './recipe.js';

/** Longest wait for a response to start (connection, redirects, headers). */
export const DEFAULT_DOWNLOAD_TIMEOUT_MS = 60_000;
/** Longest silence between two chunks of a response body. */
export const DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS = 30_000;

export interface DownloadRequest {
  url: string;
  checksum?: Checksum;
  settings: BuildoutSettings;
  log: PartLog;
  signal: AbortSignal;
  /** Relative paths are relative to it (default: the buildout directory). */
  baseDir?: string;
  /** Default DEFAULT_DOWNLOAD_TIMEOUT_MS. A whole download is bounded by `signal`, not by a timer. */
  timeoutMs?: number;
  /** Default DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
}

/** A file that cannot be had: missing, HTTP error, network error, unsupported URL. */
export class DownloadError extends RecipeError {
  override name = 'DownloadError';
}
export class ChecksumError extends DownloadError {
  override name = 'ChecksumError';
}
export class OfflineError extends DownloadError {
  override name = 'OfflineError';
}
export class HostNotAllowedError extends DownloadError {
  override name = 'HostNotAllowedError';
}
/** `--frozen` and no checksum to verify the file with. */
export class FrozenError extends DownloadError {
  override name = 'FrozenError';
}
export class DownloadTimeoutError extends DownloadError {
  override name = 'DownloadTimeoutError';
}

/** SlapOS writes `url#<md5>`: the fragment is the md5 when it is 32 hex digits. */
export function splitChecksumFragment(url: string): { url: string; md5?: string } {
  const match = /^(.*)#([0-9a-f]{32})$/i.exec(url);
  return match?.[1] !== undefined && match[2] ? { url: match[1], md5: match[2].toLowerCase() } : { url };
}

/** A local copy of `request.url`, verified against its checksum. */
export async function download(request: DownloadRequest): Promise<string> {
  const { settings, signal } = request;
  signal.throwIfAborted();
  const { url, md5 } = splitChecksumFragment(request.url.trim());
  const checksum: Checksum | undefined = md5 && !request.checksum?.md5 ? { ...request.checksum, md5 } : request.checksum;
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(url)?.[1]?.toLowerCase(); // one letter is a Windows drive
  if (!url) throw new DownloadError('empty URL');
  if (scheme === undefined || scheme === 'file') {
    return useLocal(url, scheme ? filePath(url) : resolve(request.baseDir ?? settings.directory, url), checksum, signal);
  }
  if (scheme !== 'http' && scheme !== 'https') throw new DownloadError(`unsupported URL scheme '${scheme}:' in '${url}'`);

  let host: string;
  try {
    host = new URL(url).host;
  } catch {
    throw new DownloadError(`invalid URL '${url}'`);
  }
  if (!settings.allowHosts.some((pattern) => fnmatch(host, pattern.trim().toLowerCase()))) {
    throw new HostNotAllowedError(`refusing to download '${url}': host '${host}' is not in allow-hosts`);
  }
  if (settings.frozen && !KINDS.some((kind) => checksum?.[kind])) {
    throw new FrozenError(`refusing to download '${url}' without a checksum: --frozen requires md5sum, sha256 or sha512`);
  }

  const cache = settings.downloadCache;
  const name = readableName(url);
  if (cache) {
    const cached = join(cache, `${createHash('sha256').update(url).digest('hex')}-${name}`);
    if (await isFile(cached)) {
      const mismatch = await verifyFile(cached, url, checksum, signal);
      if (!mismatch) {
        request.log(`Using cached ${url}`);
        return cached;
      }
      // A stale copy (the file changed upstream, and the profile's checksum with it) is downloaded again.
      if (settings.offline) throw new ChecksumError(`${mismatch} (cached copy ${cached})`);
    }
    if (settings.offline) throw new OfflineError(`Couldn't download '${url}' in offline mode.`);
    await mkdir(cache, { recursive: true });
    request.log(`Downloading ${url}`);
    await fetchInto(url, cached, checksum, request);
    return cached;
  }

  if (settings.offline) throw new OfflineError(`Couldn't download '${url}' in offline mode.`);
  const folder = await mkdtemp(join(tmpdir(), 'slapmesh-download-'));
  request.log(`Downloading ${url}`);
  try {
    await fetchInto(url, join(folder, name), checksum, request);
  } catch (error) {
    await rm(folder, { recursive: true, force: true });
    throw error;
  }
  return join(folder, name);
}

const KINDS = ['md5', 'sha256', 'sha512'] as const;

/** The hashes of the kinds a checksum gives, fed while a file streams. */
class Hashes {
  private readonly hashes: (readonly [kind: string, expected: string, hash: Hash])[];

  constructor(checksum: Checksum | undefined) {
    this.hashes = KINDS.flatMap((kind) => {
      const expected = checksum?.[kind]?.trim().toLowerCase();
      return expected ? [[kind, expected, createHash(kind)] as const] : [];
    });
  }

  update(chunk: Uint8Array): void {
    for (const [, , hash] of this.hashes) hash.update(chunk);
  }

  /** The first mismatch, as a message naming the URL and both hashes. */
  mismatch(url: string): string | undefined {
    for (const [kind, expected, hash] of this.hashes) {
      const got = hash.digest('hex');
      if (got !== expected) return `checksum mismatch for ${url}: expected ${kind} ${expected}, got ${got}`;
    }
    return undefined;
  }
}

async function useLocal(url: string, path: string, checksum: Checksum | undefined, signal: AbortSignal): Promise<string> {
  if (!(await isFile(path))) throw new DownloadError(`no such file: ${path}${path === url ? '' : ` (from '${url}')`}`);
  const mismatch = await verifyFile(path, url, checksum, signal);
  if (mismatch) throw new ChecksumError(mismatch);
  return path;
}

async function verifyFile(path: string, url: string, checksum: Checksum | undefined, signal: AbortSignal): Promise<string | undefined> {
  const hashes = new Hashes(checksum);
  for await (const chunk of createReadStream(path, { signal })) hashes.update(chunk as Buffer);
  return hashes.mismatch(url);
}

/** Streams `url` to a temporary file beside `target`, hashing as it goes, and renames it into place once verified. */
async function fetchInto(url: string, target: string, checksum: Checksum | undefined, request: DownloadRequest): Promise<void> {
  const partial = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.part`);
  const timeouts = new AbortController();
  const expire = (message: string) => () => timeouts.abort(new DownloadTimeoutError(message));
  const responseMs = request.timeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS;
  const idleMs = request.idleTimeoutMs ?? DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS;
  let timer = setTimeout(expire(`no response from ${url} within ${responseMs} ms`), responseMs);
  let file: FileHandle | undefined;
  try {
    const response = await fetch(url, { signal: AbortSignal.any([request.signal, timeouts.signal]) });
    clearTimeout(timer);
    timer = setTimeout(expire(`download of ${url} stalled for ${idleMs} ms`), idleMs);
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadError(`Error downloading ${url}: HTTP ${response.status} ${response.statusText}`.trim());
    }
    const hashes = new Hashes(checksum);
    file = await open(partial, 'wx');
    for await (const chunk of response.body) {
      timer.refresh();
      hashes.update(chunk);
      await file.write(chunk);
    }
    clearTimeout(timer);
    await file.sync(); // the rename must not publish a file whose data a crash could lose
    await file.close();
    file = undefined;
    const mismatch = hashes.mismatch(url);
    if (mismatch) throw new ChecksumError(mismatch);
    await rename(partial, target);
  } catch (error) {
    await file?.close().catch(() => undefined);
    await rm(partial, { force: true });
    if (timeouts.signal.aborted) throw timeouts.signal.reason;
    if (request.signal.aborted) throw request.signal.reason;
    if (error instanceof DownloadError) throw error;
    throw new DownloadError(`Error downloading ${url}: ${describe(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/** fetch says "fetch failed" and puts the reason (ECONNREFUSED…) in `cause`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
}

/** The URL's last path component, made safe for a file name (the cache keys files by a hash of the URL). */
function readableName(url: string): string {
  const last = new URL(url).pathname.split('/').filter(Boolean).pop() ?? '';
  let name = last;
  try {
    name = decodeURIComponent(last);
  } catch {
    // kept encoded
  }
  return name.replace(/[^\w.+-]/g, '_').replace(/^\.+/, '').slice(-100) || 'download';
}

/** fnmatch on `host[:port]` with `*` and `?`, as allow-hosts is matched. */
function fnmatch(text: string, pattern: string): boolean {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 's').test(text);
}

function filePath(url: string): string {
  try {
    return fileURLToPath(new URL(url));
  } catch (error) {
    throw new DownloadError(`invalid file URL '${url}': ${(error as Error).message}`);
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
