// Phase 1: text → sections and options, with positions. Follows zc.buildout's
// configparser line by line (research/buildout.md §1), collecting every bad line.
import type { Diagnostic } from './errors.js';
import { dedent, dropLeadingBlankLines, isPySpace, PY_SPACE_CLASS, pyRstrip, pyStrip } from './pytext.js';

export interface ParsedOption {
  /** The key as written, operator kept: `x`, `x +`, `x -`, `<`, `<part-dependencies>`. */
  readonly key: string;
  value: string;
  readonly line: number;
}

export interface ParsedSection {
  readonly name: string;
  /** Line of the first header that opened the section in this file. */
  readonly line: number;
  readonly options: Map<string, ParsedOption>;
}

export interface ParsedFile {
  readonly file: string;
  readonly sections: Map<string, ParsedSection>;
  readonly diagnostics: Diagnostic[];
}

/** Decides a `[name:expression]` header; throws to report a bad expression. */
export type ConditionEvaluator = (expression: string) => boolean;

// zc.buildout's two line patterns, with Python's notion of `\s` spelled out.
const S = PY_SPACE_CLASS;
const SECTION_HEADER = new RegExp(`^(\\[)[${S}]*([^${S}#[\\]:;{}]+)[${S}]*(?::([^#;]*))?[${S}]*(\\][${S}]*(?:[#;].*)?)$`, 'su');
const OPTION_START = new RegExp(`^([^${S}{}[\\]=:]+[${S}]*[-+]?)=(.*)$`, 'su');

export function parseConfig(text: string, file: string, evaluate: ConditionEvaluator): ParsedFile {
  const sections = new Map<string, ParsedSection>();
  const diagnostics: Diagnostic[] = [];
  const bad = (line: number, message: string, column?: number) =>
    diagnostics.push(column === undefined ? { file, line, message } : { file, line, column, message });

  let condition = true;
  let current: ParsedSection | undefined;
  let option: ParsedOption | undefined;
  let blockMode = false;

  // Python reads text files with universal newlines: \r\n and \r both end a line.
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();

  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    let line = raw;
    const first = line[0];
    if (first === '#' || first === ';') return;

    if ((first === undefined || isPySpace(first)) && current && option) {
      if (!condition) return;
      if (blockMode) line = pyRstrip(line);
      else {
        line = pyStrip(line);
        if (!line) return;
      }
      option.value = `${option.value}\n${line}`;
      return;
    }

    const header = matchHeader(line);
    if (header) {
      condition = true;
      if (header.expression) {
        try {
          condition = evaluate(header.expression);
        } catch (error) {
          const column = (error as { column?: number }).column;
          bad(lineNo, `invalid condition [${header.name}:${header.expression}]: ${(error as Error).message}`,
            column === undefined ? undefined : header.expressionColumn + column - 1);
          condition = false;
        }
        if (!condition) return;
      }
      current = sections.get(header.name);
      if (!current) {
        current = { name: header.name, line: lineNo, options: new Map() };
        sections.set(header.name, current);
      }
      option = undefined;
      return;
    }

    if (!current) {
      if (!pyStrip(line)) return;
      bad(lineNo, condition
        ? 'text before the first section header'
        : 'option of a section whose condition is false, before any section header');
      return;
    }

    if (line.startsWith('=>')) line = `<part-dependencies> = ${line.slice(2)}`;
    const m = OPTION_START.exec(line);
    if (m) {
      if (!condition) return;
      const key = pyRstrip(m[1]!);
      const value = pyStrip(m[2]!);
      const op = key.endsWith('+') || key.endsWith('-');
      const previous = current.options.get(key);
      if (previous && op) {
        // Repeated `+=`/`-=` of one option in one section of one file accumulate.
        previous.value = pyRstrip(previous.value);
        if (value) previous.value = `${previous.value}\n${value}`;
        option = previous;
      } else {
        if (!op) {
          current.options.delete(`${key} +`);
          current.options.delete(`${key} -`);
        }
        option = { key, value, line: lineNo };
        current.options.set(key, option);
      }
      blockMode = !value;
      return;
    }
    if (!option && !pyStrip(line)) return;
    bad(lineNo, describeBadLine(line));
  });

  for (const section of sections.values()) {
    for (const opt of section.options.values()) {
      if (isPySpace(opt.value[0])) opt.value = dropLeadingBlankLines(dedent(pyRstrip(opt.value)));
    }
  }
  return { file, sections, diagnostics };
}

interface Header {
  name: string;
  expression?: string;
  expressionColumn: number;
}

function matchHeader(line: string): Header | undefined {
  const m = SECTION_HEADER.exec(line);
  if (!m) return undefined;
  const expression = m[3];
  const expressionColumn = expression === undefined ? 0 : line.indexOf(':', m[1]!.length) + 2;
  // `[name:]` is an unconditional `[name]`.
  return expression ? { name: m[2]!, expression, expressionColumn } : { name: m[2]!, expressionColumn };
}

function describeBadLine(line: string): string {
  if (isPySpace(line[0])) return 'indented line with no option to continue (an option name must start at column 1)';
  if (line.startsWith('[')) return `bad section header ${JSON.stringify(line)} (a name in brackets, without spaces or any of #;:{}[], then only a comment)`;
  if (/^[^=]*:/u.test(line) && !line.includes('=')) return `${JSON.stringify(line)}: options are written "name = value" (the "name: value" form is not supported)`;
  if (!line.includes('=')) return `${JSON.stringify(line)} is not an option ("name = value") nor a section header`;
  return `bad option name in ${JSON.stringify(line)} (no spaces or any of {}[]=: in option names)`;
}
