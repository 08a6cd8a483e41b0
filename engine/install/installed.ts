// The installed state of a buildout directory, kept in zc.buildout's `.installed.cfg` format
// (SlapOS tools read it): per part its options as installed, `__buildout_signature__` and the
// paths it created in `__buildout_installed__`. Written whole and atomically after each change.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { parseConfig } from '../config/parser.js';
import { pyCompare } from '../config/pytext.js';

export const INSTALLED_PATHS = '__buildout_installed__';
export const SIGNATURE = '__buildout_signature__';

export interface InstalledPart {
  /** Every option as installed, the signature included. */
  readonly options: Readonly<Record<string, string>>;
  readonly paths: readonly string[];
}

/** Parts in the order they were installed. */
export type InstalledState = Map<string, InstalledPart>;

const SPACES: readonly (readonly [string, string])[] = [
  [' ', '%(__buildout_space__)s'], ['\r', '%(__buildout_space_r__)s'], ['\f', '%(__buildout_space_f__)s'], ['\v', '%(__buildout_space_v__)s'],
];

/** zc.buildout's `_save_option`: whitespace a re-read would lose is written as %(…)s escapes. */
export function encodeValue(value: string): string {
  let out = value.replace(/[ \t\r\f\v]*\n[ \t\r\f\v\n]*|^[ \t\r\f\v]+|[ \t\r\f\v]+$/g, (span) => {
    const nl = span.indexOf('\n');
    const parts = nl < 0 ? [span] : [span.slice(0, nl), span.slice(nl + 1)];
    const escaped = parts.map((piece) => {
      let s = piece;
      for (const [ch, code] of SPACES) s = s.replaceAll(ch, code);
      return s.replaceAll('\n', '%(__buildout_space_n__)s');
    });
    return escaped.join('\n\t');
  });
  if (out.startsWith('\n\t')) out = `%(__buildout_space_n__)s${out.slice(2)}`;
  if (out.endsWith('\n\t')) out = `${out.slice(0, -2)}%(__buildout_space_n__)s`;
  return out;
}

export function decodeValue(value: string): string {
  if (!value.includes('%(')) return value;
  let out = value.replaceAll('%(__buildout_space_n__)s', '\n');
  for (const [ch, code] of SPACES) out = out.replaceAll(code, ch);
  return out;
}

export function readInstalled(path: string): InstalledState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw error;
  }
  const parsed = parseConfig(text, path, () => true);
  const state: InstalledState = new Map();
  const order = (parsed.sections.get('buildout')?.options.get('parts')?.value ?? '').split(/\s+/).filter(Boolean);
  for (const name of order) {
    const section = parsed.sections.get(name);
    if (!section) continue;
    const options: Record<string, string> = {};
    for (const [key, option] of section.options) options[key] = decodeValue(option.value);
    const paths = (options[INSTALLED_PATHS] ?? '').split('\n').filter(Boolean);
    delete options[INSTALLED_PATHS];
    state.set(name, { options, paths });
  }
  return state;
}

export function formatInstalled(state: InstalledState): string {
  const lines = ['[buildout]', `parts = ${[...state.keys()].join(' ')}`];
  for (const [name, part] of state) {
    lines.push('', `[${name}]`);
    const options: Record<string, string> = { ...part.options, [INSTALLED_PATHS]: part.paths.join('\n') };
    for (const key of Object.keys(options).sort(pyCompare)) lines.push(`${key} = ${encodeValue(options[key]!)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Replaces the state file at once (a crash leaves the old or the new one, never a mix). */
export function writeInstalled(path: string, state: InstalledState): void {
  if (state.size === 0) {
    rmSync(path, { force: true });
    return;
  }
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, formatInstalled(state));
  renameSync(temp, path);
}
