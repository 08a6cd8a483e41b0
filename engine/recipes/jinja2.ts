// Jinja2 on nunjucks: the Python values, operators, methods, filters and globals SlapOS templates
// use, taught to nunjucks (for the whole process: slapmesh renders only Jinja2 templates with it).
import { existsSync, statSync } from 'node:fs';
import { extname, normalize, resolve } from 'node:path';
import nunjucks from 'nunjucks';


export type Loaded = { src: string; path: string; noCache: boolean } | null;

export function jinjaEnvironment(load: (name: string) => Loaded, extensions: readonly string[]): nunjucks.Environment {
  teachPython();
  const loader = { getSource: load } as nunjucks.ILoader;
  const environment = new nunjucks.Environment(loader, { autoescape: false, trimBlocks: false, lstripBlocks: false });
  for (const [name, filter] of Object.entries(FILTERS)) environment.addFilter(name, filter);
  for (const [name, value] of Object.entries(GLOBALS)) environment.addGlobal(name, value);
  const withTests = environment as unknown as { addTest(name: string, test: (value: unknown, ...args: unknown[]) => boolean): void };
  for (const [name, test] of Object.entries(TESTS)) withTests.addTest(name, test);
  if (extensions.includes('do')) environment.addExtension('do', new DoExtension());
  return environment;
}

/** jinja2.ext.do: `{% do expression %}` evaluates the expression for its effect and writes nothing. */
class DoExtension implements nunjucks.Extension {
  tags = ['do'];
  parse(parser: any, nodes: any): unknown {
    const token = parser.nextToken();
    const expression = parser.parseExpression();
    parser.advanceAfterBlockEnd(token.value);
    return new nodes.CallExtension(this, 'run', new nodes.NodeList(token.lineno, token.colno, [expression]), []);
  }
  run(): string {
    return '';
  }
}

class PythonError extends Error {}

const isDict = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);

/** Python's truth: empty lists, dicts and strings, 0, None and False are false. */
export function pyBool(v: unknown): boolean {
  if (Array.isArray(v) || typeof v === 'string') return v.length > 0;
  if (v instanceof Map || v instanceof Set) return v.size > 0;
  if (isDict(v)) return Object.keys(v).filter((k) => k !== '__keywords').length > 0;
  return Boolean(v);
}

/** Python's repr(). */
export function pyRepr(v: unknown): string {
  if (typeof v === 'string') {
    const quote = v.includes("'") && !v.includes('"') ? '"' : "'";
    const body = v.replace(/[\\\n\r\t]|[\x00-\x1f\x7f]/g, (c) =>
      ({ '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' })[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
    return quote + (quote === "'" ? body.replaceAll("'", "\\'") : body) + quote;
  }
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (isDict(v)) return `{${Object.entries(v).filter(([k]) => k !== '__keywords').map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  return pyStr(v);
}

/** Python's str(); Jinja2's undefined prints as nothing. */
export function pyStr(v: unknown): string {
  if (v === undefined) return '';
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return v;
  if (Array.isArray(v) || isDict(v)) return pyRepr(v);
  return String(v);
}

/** Python's json.dumps (", " and ": " separators, ASCII only); `htmlSafe` as Jinja2's tojson escapes. */
export function pyJson(v: unknown, options: { sortKeys?: boolean; indent?: number; htmlSafe?: boolean } = {}, level = 0): string {
  const pad = (n: number) => (options.indent === undefined ? '' : `\n${' '.repeat(options.indent * n)}`);
  const join = (items: string[], open: string, close: string) =>
    items.length === 0 ? open + close : open + pad(level + 1) + items.join(options.indent === undefined ? ', ' : `,${pad(level + 1)}`) + pad(level) + close;
  let out: string;
  if (v === null || v === undefined) out = 'null';
  else if (typeof v === 'string') out = JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  else if (typeof v === 'number') out = Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  else if (typeof v === 'boolean') out = String(v);
  else if (Array.isArray(v)) out = join(v.map((x) => pyJson(x, options, level + 1)), '[', ']');
  else if (isDict(v)) {
    const keys = Object.keys(v).filter((k) => k !== '__keywords');
    if (options.sortKeys) keys.sort();
    out = join(keys.map((k) => `${pyJson(k, options)}: ${pyJson(v[k], options, level + 1)}`), '{', '}');
  } else throw new PythonError(`Object of type ${typeof v} is not JSON serializable`);
  return options.htmlSafe ? out.replace(/[<>&']/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : out;
}

/** What iterating gives in Python: a dict's keys, a string's characters. */
function pyList(v: unknown): unknown[] {
  if (Array.isArray(v)) return [...v];
  if (typeof v === 'string') return [...v];
  if (v instanceof Set || v instanceof Map) return [...(v instanceof Map ? v.keys() : v)];
  if (isDict(v)) return Object.keys(v).filter((k) => k !== '__keywords');
  if (v === undefined) throw new PythonError('undefined is not iterable');
  throw new PythonError(`${pyRepr(v)} is not iterable`);
}

function pyCompare(a: unknown, b: unknown): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = pyCompare(a[i], b[i]);
      if (c) return c;
    }
    return a.length - b.length;
  }
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const [x, y] = [pyStr(a), pyStr(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Keyword arguments nunjucks passes as a last object; the other arguments. */
function keywords(args: unknown[]): [unknown[], Record<string, unknown>] {
  const last = args[args.length - 1];
  if (isDict(last) && '__keywords' in last) {
    const { __keywords: _, ...rest } = last;
    return [args.slice(0, -1), rest];
  }
  return [args, {}];
}

/** Python's `%` formatting: `%s`, `%r`, `%d`, `%f`, `%x`, `%(name)s`, widths and flags. */
function pyPercent(format: string, values: unknown): string {
  const positional = Array.isArray(values) ? values : [values];
  let next = 0;
  const out = format.replace(/%(?:\(([^)]*)\))?([-#0 +]*)(\d+)?(?:\.(\d+))?([diouxXeEfFgGcrsa%])/g, (_m, key: string | undefined, flags: string, width: string | undefined, precision: string | undefined, type: string) => {
    if (type === '%') return '%';
    const value = key !== undefined ? (values as Record<string, unknown>)[key] : positional[next++];
    const number = () => {
      const n = Number(value);
      if (Number.isNaN(n)) throw new PythonError(`%${type} format: a number is required, not ${pyRepr(value)}`);
      return n;
    };
    let text: string;
    switch (type) {
      case 's': text = pyStr(value); break;
      case 'r': case 'a': text = pyRepr(value); break;
      case 'c': text = typeof value === 'number' ? String.fromCharCode(value) : pyStr(value); break;
      case 'x': case 'X': case 'o': {
        const n = Math.trunc(number());
        text = Math.abs(n).toString(type === 'o' ? 8 : 16);
        if (type === 'X') text = text.toUpperCase();
        if (n < 0) text = `-${text}`;
        break;
      }
      case 'e': case 'E': text = number().toExponential(precision ? +precision : 6); break;
      case 'f': case 'F': text = number().toFixed(precision ? +precision : 6); break;
      case 'g': case 'G': text = String(number()); break;
      default: text = String(Math.trunc(number()));
    }
    if (type === 's' && precision) text = text.slice(0, +precision);
    if (flags.includes('+') && /^[0-9]/.test(text) && 'dieEfFgG'.includes(type)) text = `+${text}`;
    const size = width ? +width : 0;
    if (text.length >= size) return text;
    if (flags.includes('-')) return text.padEnd(size);
    if (flags.includes('0') && type !== 's' && type !== 'r') return text.startsWith('-') ? `-${text.slice(1).padStart(size - 1, '0')}` : text.padStart(size, '0');
    return text.padStart(size);
  });
  if (Array.isArray(values) && next < values.length) throw new PythonError('not all arguments converted during string formatting');
  return out;
}

/** str.format(): `{}`, `{0}`, `{name}`, `{{` and `}}` (format specs are not supported). */
function pyFormat(format: string, ...args: unknown[]): string {
  const [positional, named] = keywords(args);
  let next = 0;
  return format.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, field: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    const name = (field ?? '').split(/[!:]/)[0]!;
    return pyStr(name === '' ? positional[next++] : /^\d+$/.test(name) ? positional[+name] : named[name]);
  });
}

const STRING_METHODS: Readonly<Record<string, (this: string, ...args: any[]) => unknown>> = {
  split(sep?: string | null, maxsplit = -1) {
    if (sep === undefined || sep === null) {
      const words = this.trim().split(/\s+/).filter(Boolean);
      return maxsplit < 0 || words.length <= maxsplit ? words : [...words.slice(0, maxsplit), this.trim().split(/\s+/).slice(maxsplit).join(' ')];
    }
    const parts = this.split(sep);
    return maxsplit < 0 || parts.length <= maxsplit ? parts : [...parts.slice(0, maxsplit), parts.slice(maxsplit).join(sep)];
  },
  splitlines() {
    return this.split(/\r\n|\r|\n/).filter((line, i, all) => i < all.length - 1 || line !== '');
  },
  strip(chars?: string) {
    return STRING_METHODS['rstrip']!.call(STRING_METHODS['lstrip']!.call(this, chars) as string, chars);
  },
  lstrip(chars?: string) {
    let i = 0;
    while (i < this.length && (chars ? chars.includes(this[i]!) : /\s/.test(this[i]!))) i++;
    return this.slice(i);
  },
  rstrip(chars?: string) {
    let i = this.length;
    while (i > 0 && (chars ? chars.includes(this[i - 1]!) : /\s/.test(this[i - 1]!))) i--;
    return this.slice(0, i);
  },
  startswith(prefix: string | string[]) {
    return (Array.isArray(prefix) ? prefix : [prefix]).some((p) => this.startsWith(p));
  },
  endswith(suffix: string | string[]) {
    return (Array.isArray(suffix) ? suffix : [suffix]).some((s) => this.endsWith(s));
  },
  replace(old: string, replacement: string, count = -1) {
    const parts = this.split(old);
    return count < 0 ? parts.join(replacement) : parts.slice(0, count + 1).join(replacement) + (parts.length > count + 1 ? old + parts.slice(count + 1).join(old) : '');
  },
  lower() {
    return this.toLowerCase();
  },
  upper() {
    return this.toUpperCase();
  },
  join(items: unknown) {
    return pyList(items).map(pyStr).join(this);
  },
  format(...args: unknown[]) {
    return pyFormat(this, ...args);
  },
  count(sub: string) {
    return this.split(sub).length - 1;
  },
  find(sub: string) {
    return this.indexOf(sub);
  },
  isdigit() {
    return /^[0-9]+$/.test(this);
  },
  encode() {
    return this;
  },
  decode() {
    return this;
  },
};

const LIST_METHODS: Readonly<Record<string, (this: unknown[], ...args: any[]) => unknown>> = {
  extend(items: unknown) {
    this.push(...pyList(items));
    return null;
  },
  copy() {
    return [...this];
  },
  sort(...args: unknown[]) {
    const [, named] = keywords(args);
    this.sort(pyCompare);
    if (pyBool(named['reverse'])) this.reverse();
    return null;
  },
  reverse() {
    this.reverse();
    return null;
  },
};

const DICT_METHODS: Readonly<Record<string, (this: Record<string, unknown>, ...args: any[]) => unknown>> = {
  __setitem__(k: string, v: unknown) {
    this[k] = v;
    return null;
  },
  __getitem__(k: string) {
    if (!(k in this)) throw new PythonError(`KeyError: ${pyRepr(k)}`);
    return this[k];
  },
  get(k: string, fallback: unknown = null) {
    return Object.prototype.hasOwnProperty.call(this, k) ? this[k] : fallback;
  },
  copy() {
    return { ...this };
  },
  update(...args: unknown[]) {
    const [positional, named] = keywords(args);
    for (const other of positional) Object.assign(this, isDict(other) ? other : Object.fromEntries(other as [string, unknown][]));
    Object.assign(this, named);
    return null;
  },
};

export const PYTHON_MODULES: Readonly<Record<string, unknown>> = {
  json: {
    dumps(value: unknown, ...args: unknown[]) {
      const [, named] = keywords(args);
      return pyJson(value, { sortKeys: pyBool(named['sort_keys']), ...(typeof named['indent'] === 'number' ? { indent: named['indent'] } : {}) });
    },
    loads(text: string) {
      return JSON.parse(text);
    },
  },
  os: {
    sep: '/',
    path: {
      join: (...parts: string[]) => parts.reduce((a, b) => (b.startsWith('/') ? b : a === '' || a.endsWith('/') ? a + b : `${a}/${b}`), ''),
      basename: (p: string) => p.slice(p.lastIndexOf('/') + 1),
      dirname: (p: string) => (p.lastIndexOf('/') < 0 ? '' : p.slice(0, p.lastIndexOf('/')) || '/'),
      exists: (p: string) => existsSync(p),
      isdir: (p: string) => existsSync(p) && statSync(p).isDirectory(),
      isfile: (p: string) => existsSync(p) && statSync(p).isFile(),
      splitext: (p: string) => [p.slice(0, p.length - extname(p).length), extname(p)],
      normpath: (p: string) => normalize(p).replace(/\/$/, '') || '/',
      abspath: (p: string) => resolve(p),
    },
  },
};

const GLOBALS: Readonly<Record<string, unknown>> = {
  len: (v: unknown) => (typeof v === 'string' || Array.isArray(v) ? v.length : pyList(v).length),
  str: (v: unknown = '') => pyStr(v),
  repr: pyRepr,
  bool: (v: unknown) => pyBool(v),
  int: (v: unknown = 0, base?: number) => {
    const n = typeof v === 'string' ? (base ? parseInt(v.trim(), base) : /^\s*[-+]?\d+\s*$/.test(v) ? parseInt(v, 10) : NaN) : Math.trunc(Number(v));
    if (Number.isNaN(n)) throw new PythonError(`invalid literal for int(): ${pyRepr(v)}`);
    return n;
  },
  float: (v: unknown = 0) => Number(v),
  list: (v: unknown = []) => pyList(v),
  tuple: (v: unknown = []) => pyList(v),
  set: (v: unknown = []) => [...new Set(pyList(v))],
  dict: (...args: unknown[]) => {
    const [positional, named] = keywords(args);
    const out: Record<string, unknown> = {};
    DICT_METHODS['update']!.call(out, ...positional);
    return Object.assign(out, named);
  },
  sorted: (v: unknown, ...args: unknown[]) => {
    const [, named] = keywords(args);
    const out = pyList(v).sort(pyCompare);
    return pyBool(named['reverse']) ? out.reverse() : out;
  },
  enumerate: (v: unknown, start = 0) => pyList(v).map((x, i) => [i + start, x]),
  zip: (...lists: unknown[]) => {
    const items = lists.map(pyList);
    return items.length ? items[0]!.slice(0, Math.min(...items.map((l) => l.length))).map((_, i) => items.map((l) => l[i])) : [];
  },
  min: (...args: unknown[]) => (args.length === 1 ? pyList(args[0]) : args).reduce((a, b) => (pyCompare(b, a) < 0 ? b : a)),
  max: (...args: unknown[]) => (args.length === 1 ? pyList(args[0]) : args).reduce((a, b) => (pyCompare(b, a) > 0 ? b : a)),
  abs: (v: number) => Math.abs(v),
  any: (v: unknown) => pyList(v).some(pyBool),
  all: (v: unknown) => pyList(v).every(pyBool),
};

type Filter = (this: { env: nunjucks.Environment }, value: any, ...args: any[]) => unknown;

const attribute = (item: unknown, name: string): unknown =>
  name.split('.').reduce<unknown>((v, k) => (v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k]), item);

function selectAttribute(reject: boolean): Filter {
  return function (value, name: string, test?: string, ...args) {
    return pyList(value).filter((item) => {
      const v = attribute(item, name);
      const ok = test ? (this.env as unknown as { getTest(n: string): (...a: unknown[]) => boolean }).getTest(test)(v, ...args) === true : pyBool(v);
      return ok !== reject;
    });
  };
}

const FILTERS: Readonly<Record<string, Filter>> = {
  tojson: (value, indent?: number) => pyJson(value, { sortKeys: true, htmlSafe: true, ...(typeof indent === 'number' ? { indent } : {}) }),
  list: (value) => pyList(value),
  string: (value) => pyStr(value),
  join: (value, ...args) => {
    const [[separator = ''], named] = keywords(args);
    const name = named['attribute'];
    return pyList(value).map((v) => pyStr(typeof name === 'string' ? attribute(v, name) : v)).join(pyStr(separator));
  },
  sort: (value, ...args) => {
    const [[reverse = false, caseSensitive = false, name = null], named] = keywords(args);
    const by = (named['attribute'] ?? name) as string | null;
    const sensitive = pyBool(named['case_sensitive'] ?? caseSensitive);
    const keyOf = (v: unknown) => {
      const k = by ? attribute(v, by) : v;
      return !sensitive && typeof k === 'string' ? k.toLowerCase() : k;
    };
    const out = pyList(value).sort((a, b) => pyCompare(keyOf(a), keyOf(b)));
    return pyBool(named['reverse'] ?? reverse) ? out.reverse() : out;
  },
  dictsort: (value, ...args) => {
    const [[caseSensitive = false, by = 'key', reverse = false], named] = keywords(args);
    const index = (named['by'] ?? by) === 'value' ? 1 : 0;
    const sensitive = pyBool(named['case_sensitive'] ?? caseSensitive);
    const keyOf = (pair: unknown[]) => (!sensitive && typeof pair[index] === 'string' ? (pair[index] as string).toLowerCase() : pair[index]);
    const out = Object.entries(value ?? {}).filter(([k]) => k !== '__keywords').sort((a, b) => pyCompare(keyOf(a), keyOf(b)));
    return pyBool(named['reverse'] ?? reverse) ? out.reverse() : out;
  },
  unique: (value) => [...new Set(pyList(value))],
  items: (value) => Object.entries(value ?? {}),
  count: (value) => pyList(value).length,
  map: function (value, ...args) {
    const [positional, named] = keywords(args);
    if (typeof named['attribute'] === 'string') {
      return pyList(value).map((v) => attribute(v, named['attribute'] as string) ?? named['default']);
    }
    const [name, ...rest] = positional as [string, ...unknown[]];
    const filter = this.env.getFilter(name);
    return pyList(value).map((v) => filter.call(this, v, ...rest));
  },
  selectattr: selectAttribute(false),
  rejectattr: selectAttribute(true),
};

const TESTS: Readonly<Record<string, (value: unknown, ...args: unknown[]) => boolean>> = {
  none: (v) => v === null,
  boolean: (v) => typeof v === 'boolean',
  true: (v) => v === true,
  false: (v) => v === false,
  integer: (v) => Number.isInteger(v),
  float: (v) => typeof v === 'number' && !Number.isInteger(v),
  sequence: (v) => Array.isArray(v) || typeof v === 'string' || isDict(v),
  in: (v, container) => pyList(container).includes(v) || (typeof container === 'string' && typeof v === 'string' && container.includes(v)),
};

let taught = false;

/**
 * Changes nunjucks (for the whole process: slapmesh uses it for Jinja2 templates only) to follow
 * Python where templates see the difference: truth of empty containers, `%` formatting, `+` on
 * lists, str() of None/True/lists when printed, tuples, dict keys that are variables, iterating a
 * dict, negative indexes, and the str/list/dict methods profiles call.
 */
function teachPython(): void {
  if (taught) return;
  taught = true;
  const lib = nunjucks as unknown as {
    runtime: Record<string, any>; nodes: Record<string, any>; lexer: Record<string, string>;
    compiler: { Compiler: { prototype: Record<string, any> } }; parser: { Parser: { prototype: Record<string, any> } };
  };
  const { runtime, nodes, lexer } = lib;
  const compiler = lib.compiler.Compiler.prototype;
  const parser = lib.parser.Parser.prototype;
  const closing = [lexer['TOKEN_RIGHT_PAREN'], lexer['TOKEN_RIGHT_BRACKET'], lexer['TOKEN_RIGHT_CURLY']];
  /** A node compiled as `runtime.<helper>(children...)`. */
  const call = (helper: string, ...children: unknown[]) => ({ typename: 'PyCall', helper, children });

  // Before installJinjaCompat, which builds its slices on this: Python's trailing commas in
  // `(a,)`, `[a, b,]` and `{k: v,}` (where `(a,)` is a tuple), and any expression as a dict key.
  parser['parseAggregate'] = function (this: any) {
    const token = this.nextToken();
    const kind = ({ [lexer['TOKEN_LEFT_PAREN']!]: 'Group', [lexer['TOKEN_LEFT_BRACKET']!]: 'Array', [lexer['TOKEN_LEFT_CURLY']!]: 'Dict' } as Record<string, string>)[token.type];
    if (!kind) return null;
    const node = new nodes[kind](token.lineno, token.colno);
    let comma = false;
    for (;;) {
      if (closing.includes(this.peekToken().type)) {
        this.nextToken();
        break;
      }
      if (node.children.length > 0) {
        if (!this.skip(lexer['TOKEN_COMMA'])) this.fail('parseAggregate: expected comma after expression', token.lineno, token.colno);
        comma = true;
        if (closing.includes(this.peekToken().type)) continue;
      }
      if (kind === 'Dict') {
        const key = this.parseExpression();
        if (!this.skip(lexer['TOKEN_COLON'])) this.fail('parseAggregate: expected colon after dict key', token.lineno, token.colno);
        node.addChild(new nodes['Pair'](key.lineno, key.colno, key, this.parseExpression()));
      } else node.addChild(this.parseExpression());
    }
    return kind === 'Group' && comma ? new nodes['Array'](node.lineno, node.colno, node.children) : node;
  };
  // Python allows a comma after the last argument of a call.
  parser['parseSignature'] = function (this: any, tolerant: boolean, noParens: boolean) {
    let token = this.peekToken();
    if (!noParens && token.type !== lexer['TOKEN_LEFT_PAREN']) {
      if (tolerant) return null;
      this.fail('expected arguments', token.lineno, token.colno);
    }
    if (token.type === lexer['TOKEN_LEFT_PAREN']) token = this.nextToken();
    const args = new nodes['NodeList'](token.lineno, token.colno);
    const named = new nodes['KeywordArgs'](token.lineno, token.colno);
    const unpacked: unknown[] = [];
    for (let first = true; ; first = false) {
      token = this.peekToken();
      if (!noParens && token.type === lexer['TOKEN_RIGHT_PAREN']) {
        this.nextToken();
        break;
      }
      if (noParens && token.type === lexer['TOKEN_BLOCK_END']) break;
      if (!first) {
        if (!this.skip(lexer['TOKEN_COMMA'])) this.fail('parseSignature: expected comma after expression', token.lineno, token.colno);
        if (!noParens && this.peekToken().type === lexer['TOKEN_RIGHT_PAREN']) continue;
      }
      if (this.skipValue(lexer['TOKEN_OPERATOR'], '**')) {
        unpacked.push(this.parseExpression()); // `**mapping`: more keyword arguments
        continue;
      }
      const arg = this.parseExpression();
      if (this.skipValue(lexer['TOKEN_OPERATOR'], '=')) named.addChild(new nodes['Pair'](arg.lineno, arg.colno, arg, this.parseExpression()));
      else args.addChild(arg);
    }
    if (unpacked.length) args.addChild(call('pyKeywords', named, ...unpacked));
    else if (named.children.length) args.addChild(named);
    return args;
  };
  nunjucks.installJinjaCompat();

  Object.assign(runtime, {
    pyBool,
    pyStr,
    pyMod: (a: unknown, b: unknown) => (typeof a === 'string' ? pyPercent(a, b) : (a as number) % (b as number)),
    pyAdd: (a: unknown, b: unknown) => (Array.isArray(a) && Array.isArray(b) ? [...a, ...b] : (a as number) + (b as number)),
    pyMul: (a: unknown, b: unknown) =>
      typeof a === 'string' && typeof b === 'number' ? a.repeat(Math.max(0, b))
        : Array.isArray(a) && typeof b === 'number' ? Array.from({ length: Math.max(0, b) }, () => a).flat()
          : (a as number) * (b as number),
    pyKeywords: (named: Record<string, unknown>, ...mappings: unknown[]) => Object.assign(named, ...mappings.filter(isDict)),
    pyIter: (v: unknown) => (isDict(v) || v instanceof Set || v instanceof Map ? pyList(v) : v),
  });
  const SafeString = runtime['SafeString'];
  runtime['suppressValue'] = (value: unknown, autoescape: boolean) =>
    value instanceof SafeString ? value : autoescape ? (nunjucks as unknown as { lib: { escape(s: string): string } }).lib.escape(pyStr(value)) : pyStr(value);

  const lookup = runtime['memberLookup'];
  runtime['memberLookup'] = function (this: unknown, obj: unknown, name: unknown, ...rest: unknown[]) {
    if (rest.length === 2) {
      const slice = lookup.call(this, obj, name, ...rest); // x[a:b:c], a list of characters for a string
      return typeof obj === 'string' ? slice.join('') : slice;
    }
    if (typeof name === 'number' && name < 0 && (Array.isArray(obj) || typeof obj === 'string')) return obj[obj.length + name];
    if (typeof name === 'string') {
      if (typeof obj === 'string') {
        const value = STRING_METHODS[name] ?? (obj as unknown as Record<string, unknown>)[name];
        return typeof value === 'function' ? value.bind(obj) : value;
      }
      if (Array.isArray(obj) && LIST_METHODS[name]) return LIST_METHODS[name].bind(obj);
      if (isDict(obj)) {
        if (Object.prototype.hasOwnProperty.call(obj, name)) return obj[name];
        if (DICT_METHODS[name]) return DICT_METHODS[name].bind(obj);
      }
    }
    return lookup.call(this, obj, name);
  };

  // Expressions the compiler emits through the Python helpers above.
  compiler['compilePyCall'] = function (this: any, node: { helper: string; children: unknown[] }, frame: unknown) {
    this._emit(`runtime.${node.helper}(`);
    node.children.forEach((child, i) => {
      if (i) this._emit(', ');
      this.compile(child, frame);
    });
    this._emit(')');
  };
  const assertType = compiler['assertType'];
  compiler['assertType'] = function (this: any, node: { typename?: string }, ...types: unknown[]) {
    if (node?.typename === 'PyCall') return;
    assertType.call(this, node, ...types);
  };
  const wrapping = (method: string, field: string, helper: string) => {
    const original = compiler[method];
    compiler[method] = function (this: any, node: Record<string, any>, ...rest: unknown[]) {
      if (node[field]?.typename !== 'PyCall') node[field] = call(helper, node[field]);
      return original.call(this, node, ...rest);
    };
  };
  wrapping('compileIf', 'cond', 'pyBool');
  wrapping('compileInlineIf', 'cond', 'pyBool');
  wrapping('compileNot', 'target', 'pyBool');
  const forLoop = compiler['compileFor'];
  compiler['compileFor'] = function (this: any, node: Record<string, any>, ...rest: unknown[]) {
    // Iterating a dict gives its keys (nunjucks needs `for k, v in` to iterate an object).
    if (!(node['name'] instanceof nodes['Array']) && node['arr']?.typename !== 'PyCall') node['arr'] = call('pyIter', node['arr']);
    return forLoop.call(this, node, ...rest);
  };
  for (const [method, helper] of [['compileMod', 'pyMod'], ['compileAdd', 'pyAdd'], ['compileMul', 'pyMul']] as const) {
    compiler[method] = function (this: any, node: { left: unknown; right: unknown }, frame: unknown) {
      this.compile(call(helper, node.left, node.right), frame);
    };
  }
  compiler['compileConcat'] = function (this: any, node: { left: unknown; right: unknown }, frame: unknown) {
    this._emit('(');
    this.compile(call('pyStr', node.left), frame);
    this._emit(' + ');
    this.compile(call('pyStr', node.right), frame);
    this._emit(')');
  };
  // `a and b` / `a or b` give one of their operands, by Python truth; the right one only if needed.
  for (const [method, pick] of [['compileAnd', '? (R) : py_l'], ['compileOr', '? py_l : (R)']] as const) {
    compiler[method] = function (this: any, node: { left: unknown; right: unknown }, frame: unknown) {
      const [before, after] = pick.split('R') as [string, string];
      this._emit(`((py_l) => runtime.pyBool(py_l) ${before}`);
      this.compile(node.right, frame);
      this._emit(`${after})(`);
      this.compile(node.left, frame);
      this._emit(')');
    };
  }
  // The name of a called expression, quoted into the code for error messages: nunjucks does not
  // escape newlines (`'\n'.join(x)` would not compile).
  const nodeName = compiler['_getNodeName'];
  compiler['_getNodeName'] = function (this: any, node: unknown) {
    return String(nodeName.call(this, node)).replace(/[\\\r\n\u2028\u2029]/g, ' ');
  };
  // `(a, b)` and `()` are tuples (lists here), not JavaScript's comma operator.
  const group = compiler['compileGroup'];
  compiler['compileGroup'] = function (this: any, node: { children: unknown[] }, frame: unknown) {
    return node.children.length !== 1 ? this.compileArray(node, frame) : group.call(this, node, frame);
  };
  // `{name: value}` uses the variable `name`'s value as the key, as Jinja2 does.
  const dict = compiler['compileDict'];
  compiler['compileDict'] = function (this: any, node: { typename: string; children: { key: any; value: unknown }[] }, frame: unknown) {
    if (node.typename !== 'Dict') return dict.call(this, node, frame); // keyword arguments
    this._emit('{');
    node.children.forEach((pair, i) => {
      if (i) this._emit(',');
      if (pair.key instanceof nodes['Literal'] && typeof pair.key.value === 'string') this.compile(pair.key, frame);
      else {
        this._emit('[runtime.pyStr(');
        this.compile(pair.key, frame);
        this._emit(')]');
      }
      this._emit(': ');
      this._compileExpression(pair.value, frame);
    });
    this._emit('}');
  };
}
