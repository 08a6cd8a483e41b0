// Reading extended files given as URLs, with zc.buildout's extends-cache rules:
// files are cached under md5(url); offline uses the cache only; `newest` prefers the network.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_DOWNLOAD_TIMEOUT_MS = 30_000;

export interface DownloadOptions {
  readonly offline: boolean;
  readonly newest: boolean;
  /** Absolute folder, or undefined for no extends-cache. */
  readonly extendsCache?: string;
  readonly timeoutMs?: number;
}

export class DownloadError extends Error {
  override name = 'DownloadError';
}

export function isUrl(s: string): boolean {
  return /^[a-zA-Z0-9+.-]+:\/\//.test(s);
}

export async function fetchExtended(url: string, options: DownloadOptions): Promise<string> {
  if (url.startsWith('file://')) return readFileSync(fileURLToPath(url), 'utf8');
  if (!/^https?:\/\//i.test(url)) throw new DownloadError(`unsupported URL scheme in ${url} (use file:, http: or https:)`);
  const cached = options.extendsCache ? join(options.extendsCache, createHash('md5').update(url).digest('hex')) : undefined;
  const fromCache = (): string | undefined => {
    try {
      return cached ? readFileSync(cached, 'utf8') : undefined;
    } catch {
      return undefined;
    }
  };
  if (options.offline) {
    const text = fromCache();
    if (text === undefined) throw new DownloadError(`Couldn't download '${url}' in offline mode.`);
    return text;
  }
  if (!options.newest) {
    const text = fromCache();
    if (text !== undefined) return text;
  }
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS) });
    if (!response.ok) throw new DownloadError(`HTTP ${response.status} ${response.statusText}`);
    const text = await response.text();
    if (cached && options.extendsCache) {
      mkdirSync(options.extendsCache, { recursive: true });
      const temp = `${cached}.${process.pid}.tmp`;
      writeFileSync(temp, text);
      renameSync(temp, cached);
    }
    return text;
  } catch (error) {
    const text = fromCache();
    if (text !== undefined) return text;
    throw new DownloadError(`error downloading ${url}: ${(error as Error).message}`);
  }
}
