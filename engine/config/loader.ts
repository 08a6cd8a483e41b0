// Phase 2: find and read every file of a configuration, in the SlapOS fork's order:
// depth-first postorder, children in `extends` order, each file read once.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { evaluateCondition } from './condition.js';
import { ConfigError, type Diagnostic, type Location } from './errors.js';
import { parseConfig, type ParsedFile } from './parser.js';
import { pyDirname, pyJoin, pySplit } from './pytext.js';
import { RawValue, type RawConfig, type RawSection } from './raw.js';
import { fetchExtended, isUrl, type DownloadOptions } from './fetch.js';

export const PROFILE_BASE = '_profile_base_location_';
const PROFILE_BASE_REF = '${:_profile_base_location_}';

/** One file as it takes part in the merge. */
export interface LoadedFile {
  /** The path or URL as reached (joined, not normalised): what `_profile_base_location_` is built from. */
  readonly joined: string;
  /** Normalised absolute path or URL: a file's identity. */
  readonly id: string;
  readonly config: RawConfig;
}

/** Reads and parses files; keeps parses so repeated resolutions skip the work. */
export class ConfigReader {
  private readonly parsed = new Map<string, ParsedFile>();

  /** `read` is how local files are read: the file system unless a test gives files in memory. */
  constructor(private readonly read: (path: string) => Uint8Array = readFileSync) {}

  parseText(text: string, file: string): ParsedFile {
    return parseConfig(text, file, (expression) => evaluateCondition(expression));
  }

  /** Parse of a local file, cached by content. */
  parseFile(path: string): ParsedFile {
    const text = decodeUtf8(this.read(path), path);
    const key = `${path}\0${text}`;
    let parsed = this.parsed.get(key);
    if (!parsed) {
      parsed = this.parseText(text, path);
      this.parsed.set(key, parsed);
    }
    return parsed;
  }
}

function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError([{ file, line: 1, message: 'not valid UTF-8 text' }]);
  }
}

export interface LoadOptions {
  /** `buildout:extends` given on the command line: read after the root file, in the same walk. */
  readonly cliExtends?: readonly string[];
  readonly download: DownloadOptions;
  readonly reader?: ConfigReader;
}

/** Every file of the configuration rooted at `rootPath`, in merge order. */
export async function loadFiles(rootPath: string, options: LoadOptions): Promise<LoadedFile[]> {
  const reader = options.reader ?? new ConfigReader();
  const order: LoadedFile[] = [];
  const done = new Set<string>();
  const open: string[] = [];
  const diagnostics: Diagnostic[] = [];

  const visit = async (joined: string, from: Location | undefined): Promise<void> => {
    const id = identity(joined);
    if (open.includes(id)) {
      const cycle = [...open.slice(open.indexOf(id)), id].join(' -> ');
      diagnostics.push({ ...(from ?? { file: id, line: 1 }), message: `extends cycle: ${cycle}` });
      return;
    }
    if (done.has(id)) return;
    let parsed: ParsedFile;
    try {
      parsed = isUrl(joined)
        ? reader.parseText(await fetchExtended(joined, options.download), joined)
        : reader.parseFile(id);
    } catch (error) {
      if (error instanceof ConfigError) diagnostics.push(...error.diagnostics);
      else diagnostics.push(missing(joined, from, error));
      return;
    }
    diagnostics.push(...parsed.diagnostics);
    open.push(id);
    const base = baseOf(joined);
    const extendsOption = parsed.sections.get('buildout')?.options.get('extends');
    if (extendsOption) {
      const at = { file: id, line: extendsOption.line };
      for (const entry of pySplit(extendsOption.value)) await visit(locate(base, entry), at);
    }
    const extendedBy = parsed.sections.get('buildout')?.options.get('extended-by');
    if (extendedBy) {
      diagnostics.push({ file: id, line: extendedBy.line, message: 'the "extended-by" option is no longer supported' });
    }
    open.pop();
    done.add(id);
    order.push({ joined, id, config: toRawConfig(parsed, id, base) });
  };

  await visit(rootPath, undefined);
  for (const extra of options.cliExtends ?? []) await visit(isUrl(extra) ? extra : resolvePath(extra), undefined);
  if (diagnostics.length) throw new ConfigError(diagnostics);
  return order;
}

function missing(joined: string, from: Location | undefined, error: unknown): Diagnostic {
  const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
  if (!from) return { file: joined, line: 1, message: `cannot read the configuration: ${reason}` };
  return { ...from, message: `cannot read extended file ${joined}: ${reason}` };
}

/** Where an `extends` entry points, relative to the extending file's base. */
function locate(base: string, entry: string): string {
  if (isUrl(entry)) return entry;
  if (isUrl(base)) return entry.startsWith('/') ? entry : `${base}/${entry}`;
  const expanded = entry === '~' || entry.startsWith('~/') ? homedir() + entry.slice(1) : entry;
  return pyJoin(base, expanded);
}

function baseOf(joined: string): string {
  return isUrl(joined) ? joined.slice(0, joined.lastIndexOf('/')) : pyDirname(joined);
}

function identity(joined: string): string {
  if (!isUrl(joined)) return resolvePath(joined);
  try {
    return new URL(joined).href;
  } catch {
    return joined;
  }
}

/**
 * One file's sections as raw values: `extends` taken out, `${:_profile_base_location_}`
 * replaced by the file's base, and every section told that base.
 */
function toRawConfig(parsed: ParsedFile, file: string, base: string): RawConfig {
  const config: RawConfig = new Map();
  for (const [name, section] of parsed.sections) {
    const raw: RawSection = new Map();
    for (const [key, option] of section.options) {
      if (name === 'buildout' && key === 'extends') continue;
      const value = option.value.includes(PROFILE_BASE_REF) ? option.value.replaceAll(PROFILE_BASE_REF, base) : option.value;
      raw.set(key, RawValue.set(value, { file, line: option.line }));
    }
    if (!raw.has(PROFILE_BASE)) raw.set(PROFILE_BASE, RawValue.set(base, { file, line: section.line }));
    config.set(name, raw);
  }
  return config;
}
