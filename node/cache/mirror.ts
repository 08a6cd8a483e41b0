// A release given by URL (design.md §6: "a URL (fetched, then bundled)"): its profiles, and every file
// their options name under a profile's URL folder (`${:_profile_base_location_}/…`), are downloaded into a
// local folder with the same layout, which is then bundled like a checkout: the same files give the same
// CID as a local copy of the release.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfiguration, parseAssignment, startEvaluation } from '../../engine/config/configuration.js';
import { isUrl } from '../../engine/config/fetch.js';
import { addLocation, resolveSections } from '../../engine/config/resolve.js';

/** One download of a release's file: connect, headers and body. */
export const MIRROR_FETCH_TIMEOUT_MS = 30_000;
/** A release's files are profiles, templates and small sources; larger ones are refused. */
export const MIRROR_MAX_FILE_BYTES = 64 * 1024 * 1024;

export class MirrorError extends Error {
  override name = 'MirrorError';
}

/**
 * Downloads the release at `url` into `dir` (a folder named as the release's URL folder, inside `dir`) and
 * returns the local path of its root profile. A `file://` URL is its local path: nothing is copied.
 */
export async function mirrorRelease(url: string, dir: string, signal?: AbortSignal): Promise<string> {
  if (url.startsWith('file://')) return fileURLToPath(url);
  if (!/^https?:\/\//i.test(url)) throw new MirrorError(`unsupported release URL ${url} (use http:, https: or file:)`);
  // A profile read from a URL has no folder: the mirror stands in for `${buildout:directory}`.
  const configuration = await loadConfiguration({ configFile: url, assignments: [parseAssignment(`buildout:directory=${dir}`)] });
  const profiles = configuration.files.map((file) => (isUrl(file.id) ? new URL(file.id).href : file.id));
  const local = profiles.find((id) => !isUrl(id));
  if (local) throw new MirrorError(`release ${url} extends a local file, ${local}: a release given by URL must be whole at its URL`);
  const bases = [...new Set(profiles.map(folderOf))];
  const root = commonFolder(bases, url);

  const { sections } = resolveSections(startEvaluation(configuration, addLocation));
  const named = new Map<string, string>(); // URL → where it is named, for errors
  for (const [section, options] of Object.entries(sections)) {
    for (const [option, value] of Object.entries(options)) {
      if (option === '_profile_base_location_') continue; // a folder
      for (const word of urlsIn(value)) {
        if (!word.endsWith('/') && !bases.includes(`${word}/`) && bases.some((base) => word.startsWith(base))) named.set(word, `[${section}] ${option}`);
      }
    }
  }

  const top = join(dir, decodeURIComponent(root.replace(/\/$/, '').split('/').pop() || new URL(root).hostname));
  const files = new Map<string, string>([...profiles.map((id) => [id, 'extends'] as [string, string]), ...named]);
  for (const [file, where] of files) {
    const relative = decodeURIComponent(file.slice(root.length));
    if (relative.split('/').some((segment) => segment === '..' || segment === '')) throw new MirrorError(`release file ${file} (${where}) has an unsafe path`);
    const bytes = await download(file, where, signal);
    const path = join(top, ...relative.split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
  }
  return join(top, ...decodeURIComponent(url.slice(root.length)).split('/'));
}

async function download(url: string, where: string, signal?: AbortSignal): Promise<Uint8Array> {
  const timeout = AbortSignal.timeout(MIRROR_FETCH_TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout, redirect: 'follow' });
  } catch (error) {
    signal?.throwIfAborted();
    throw new MirrorError(`cannot fetch ${url} (${where}): ${(error as Error).message}`);
  }
  if (!response.ok) {
    // Checkouts often name folders (a `path` of sources): HTTP has no way to list them.
    const hint = response.status === 404 ? ' (if it is a folder: HTTP cannot list folders; supply a checkout, or the CID of its bundle)' : '';
    throw new MirrorError(`cannot fetch ${url} (${where}): HTTP ${response.status} ${response.statusText}${hint}`);
  }
  const length = Number(response.headers.get('content-length') ?? 0);
  if (length > MIRROR_MAX_FILE_BYTES) throw new MirrorError(`${url} (${where}) is ${length} bytes, more than ${MIRROR_MAX_FILE_BYTES}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.byteLength > MIRROR_MAX_FILE_BYTES) throw new MirrorError(`${url} (${where}) is more than ${MIRROR_MAX_FILE_BYTES} bytes`);
  return bytes;
}

/** A URL's folder, with its trailing slash. */
function folderOf(url: string): string {
  return url.slice(0, url.lastIndexOf('/') + 1);
}

/** The deepest folder holding every one of `folders` (all on one origin). */
function commonFolder(folders: string[], url: string): string {
  const origin = new URL(url).origin;
  if (folders.some((folder) => new URL(folder).origin !== origin)) throw new MirrorError(`release ${url} extends profiles on other hosts: ${folders.join(' ')}`);
  let common = folders[0]!;
  for (const folder of folders) while (!folder.startsWith(common)) common = folderOf(common.slice(0, -1));
  return common;
}

/** The http(s) URLs a value names: whitespace-separated words, or what follows the last `=` in one. */
function urlsIn(value: string): string[] {
  const urls: string[] = [];
  for (const word of value.split(/\s+/)) {
    for (const candidate of [word, word.slice(word.lastIndexOf('=') + 1)]) {
      const url = candidate.replace(/^['"]+|['"]+$/g, '');
      if (/^https?:\/\//i.test(url) && URL.canParse(url)) urls.push(new URL(url).href); // `a/b/../c` as the server sees it
    }
  }
  return urls;
}
