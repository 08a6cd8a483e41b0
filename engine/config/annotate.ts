// `buildout annotate`: every option's raw value (before substitution) and where each part
// of it came from, in zc.buildout's layout with `FILE:LINE` for file origins.
import { relative } from 'node:path';
import type { Configuration } from './configuration.js';
import { pyCompare } from './pytext.js';
import { isOrigin, type HistoryItem, type Origin, type RawValue } from './raw.js';

export interface AnnotateOptions {
  /** Paths under this folder are shown relative to it. */
  readonly baseDir: string;
  /** Full history, newest first, instead of the last assignment and its increments. */
  readonly verbose?: boolean;
  /** Only these sections (all when empty). */
  readonly sections?: readonly string[];
}

export function formatOrigin(origin: Origin, baseDir: string): string {
  if (!isOrigin(origin)) return origin;
  const file = origin.file.startsWith(`${baseDir}/`) ? relative(baseDir, origin.file) : origin.file;
  return `${file}:${origin.line}`;
}

export function annotate(configuration: Configuration, options: AnnotateOptions): string {
  const out: string[] = ['', 'Annotated sections', '=================='];
  for (const name of [...configuration.raw.keys()].sort(pyCompare)) {
    if (options.sections?.length && !options.sections.includes(name)) continue;
    out.push('', `[${name}]`);
    const section = configuration.raw.get(name)!;
    for (const key of [...section.keys()].sort(pyCompare)) {
      const value = section.get(key)!;
      out.push(...keyAndValue(key, value.value));
      out.push(...(options.verbose ? verboseHistory(value, options.baseDir) : terseHistory(value, options.baseDir)));
    }
  }
  return `${out.join('\n')}\n`;
}

function keyAndValue(key: string, value: string): string[] {
  const lines = value.split('\n');
  if (lines.length <= 1) return [value ? `${key}= ${value}` : `${key}=`];
  return [`${key}= ${lines[0]!}`, ...lines.slice(1)];
}

/** The last assignment and the increments made since, oldest first. */
function terseHistory(value: RawValue, baseDir: string): string[] {
  const shown: HistoryItem[] = [];
  for (let i = value.history.length - 1; i >= 0; i--) {
    const item = value.history[i]!;
    shown.unshift(item);
    if (item.operation !== 'ADD' && item.operation !== 'REMOVE') break;
  }
  return shown.map((item) => {
    const prefix = item.operation === 'ADD' ? '+=  ' : item.operation === 'REMOVE' ? '-=  ' : '    ';
    return prefix + formatOrigin(item.origin, baseDir);
  });
}

function verboseHistory(value: RawValue, baseDir: string): string[] {
  const out = [''];
  for (const item of [...value.history].reverse()) {
    out.push(`   ${isOrigin(item.origin) ? 'IN' : 'AS'} ${formatOrigin(item.origin, baseDir)}`);
    const lines = item.value.split('\n');
    if (lines.length <= 1) out.push(`   ${item.operation} VALUE = ${item.value}`);
    else out.push(`   ${item.operation} VALUE =`, ...lines.map((line) => `      ${line}`));
  }
  out.push('');
  return out;
}
