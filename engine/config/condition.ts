// Conditional sections `[name:expression]`: zc.buildout first reads the expression as a
// PEP 508 environment marker, else evaluates it as Python with a few globals
// (research/buildout.md §1.4). This is a small, safe evaluator for the Python that
// profiles use: literals, tuples and lists, comparisons, boolean logic, a whitelist of
// sys/os/platform facts, string methods, and one-clause list comprehensions.
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { arch, endianness, release, version as osVersion } from 'node:os';

export class ConditionError extends Error {
  override name = 'ConditionError';
  /** 1-based column inside the expression, when known. */
  constructor(message: string, readonly column?: number) {
    super(message);
  }
}

/** What conditions can see of the machine: CPython 3.11 on Linux, this architecture. */
export interface ConditionEnvironment {
  readonly pythonVersion: readonly [number, number, number];
  readonly machine: string;
  readonly release: string;
  readonly kernelVersion: string;
  readonly bits: 32 | 64;
  readonly littleEndian: boolean;
}

const MACHINES: Readonly<Record<string, string>> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loongarch64' };

let defaultEnvironment: ConditionEnvironment | undefined;

export function defaultConditionEnvironment(): ConditionEnvironment {
  defaultEnvironment ??= {
    pythonVersion: [3, 11, 7],
    machine: MACHINES[arch()] ?? arch(),
    release: release(),
    kernelVersion: osVersion(),
    bits: ['ia32', 'arm', 'mips', 'mipsel', 'ppc', 's390'].includes(arch()) ? 32 : 64,
    littleEndian: endianness() === 'LE',
  };
  return defaultEnvironment;
}

const MAX_LENGTH = 10_000;
const MAX_DEPTH = 100;
const MAX_ITEMS = 100_000;

export function evaluateCondition(expression: string, env: ConditionEnvironment = defaultConditionEnvironment()): boolean {
  const text = expression.replaceAll('\\x23', '#').replaceAll('\\x3b', ';');
  if (text.length > MAX_LENGTH) throw new ConditionError(`condition longer than ${MAX_LENGTH} characters`);
  const tokens = tokenize(text);
  const marker = parseMarker(tokens);
  if (marker) return evaluateMarker(marker, markerEnvironment(env));
  const parser = new Parser(tokens);
  const node = parser.expressionList();
  parser.expectEnd();
  return truthy(new Evaluator(env).eval(node, new Map()));
}

// ---------------------------------------------------------------- tokens

type TokenKind = 'name' | 'number' | 'string' | 'op' | 'end';
interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  readonly value?: string | number;
  readonly column: number;
}

const OPERATORS = ['==', '!=', '<=', '>=', '~=', '**', '//', '<', '>', '(', ')', '[', ']', ',', '.', ':', '+', '-', '*', '%', '/'];
const ESCAPES: Readonly<Record<string, string>> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0', a: '\x07', b: '\b', f: '\f', v: '\v', '\n': '' };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    const column = i + 1;
    if (/\s/.test(ch)) {
      i++;
    } else if (/[A-Za-z_]/.test(ch)) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))![0];
      i += name.length;
      if (/^[rRbBuUfF]{1,2}$/.test(name) && (text[i] === '"' || text[i] === "'")) throw new ConditionError(`string prefix ${name} is not supported`, column);
      tokens.push({ kind: 'name', text: name, column });
    } else if (/[0-9]/.test(ch) || (ch === '.' && /[0-9]/.test(text[i + 1] ?? ''))) {
      const m = /^(?:0[xX][0-9a-fA-F_]+|(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)/.exec(text.slice(i))![0];
      i += m.length;
      const n = Number(m.replaceAll('_', ''));
      if (Number.isNaN(n)) throw new ConditionError(`invalid number ${m}`, column);
      tokens.push({ kind: 'number', text: m, value: n, column });
    } else if (ch === '"' || ch === "'") {
      let value = '';
      let j = i + 1;
      for (;;) {
        const c = text[j];
        if (c === undefined) throw new ConditionError('unterminated string literal', column);
        if (c === ch) break;
        if (c === '\\') {
          const next = text[j + 1] ?? '';
          if (next === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(j + 2, j + 4))) {
            value += String.fromCharCode(parseInt(text.slice(j + 2, j + 4), 16));
            j += 4;
            continue;
          }
          value += ESCAPES[next] ?? `\\${next}`;
          j += 2;
          continue;
        }
        value += c;
        j++;
      }
      i = j + 1;
      tokens.push({ kind: 'string', text: text.slice(column - 1, i), value, column });
    } else {
      const op = OPERATORS.find((o) => text.startsWith(o, i));
      if (!op) throw new ConditionError(`invalid character ${JSON.stringify(ch)}`, column);
      i += op.length;
      tokens.push({ kind: 'op', text: op, column });
    }
  }
  tokens.push({ kind: 'end', text: '', column: text.length + 1 });
  return tokens;
}

// ---------------------------------------------------------------- PEP 508 markers

const MARKER_VARIABLES = new Set([
  'python_version', 'python_full_version', 'os_name', 'sys_platform', 'platform_release', 'platform_system',
  'platform_version', 'platform_machine', 'platform_python_implementation', 'implementation_name',
  'implementation_version', 'extra',
]);
const MARKER_OPS = new Set(['<', '<=', '==', '!=', '>=', '>', '~=', 'in', 'not in']);

type Marker = { kind: 'and' | 'or'; left: Marker; right: Marker } | { kind: 'compare'; left: MarkerValue; op: string; right: MarkerValue };
type MarkerValue = { variable: string } | { literal: string };

/** The expression as a marker, or undefined when it is not one (then it is Python). */
function parseMarker(tokens: readonly Token[]): Marker | undefined {
  let at = 0;
  const peek = () => tokens[at]!;
  const value = (): MarkerValue | undefined => {
    const t = tokens[at]!;
    if (t.kind === 'string') return (at++, { literal: t.value as string });
    if (t.kind === 'name' && MARKER_VARIABLES.has(t.text)) return (at++, { variable: t.text });
    return undefined;
  };
  const op = (): string | undefined => {
    const t = peek();
    if (t.kind === 'op' && MARKER_OPS.has(t.text)) return (at++, t.text);
    if (t.kind === 'name' && t.text === 'in') return (at++, 'in');
    if (t.kind === 'name' && t.text === 'not' && tokens[at + 1]?.text === 'in') return (at += 2, 'not in');
    return undefined;
  };
  const atom = (depth: number): Marker | undefined => {
    if (depth > MAX_DEPTH) return undefined;
    if (peek().text === '(' && peek().kind === 'op') {
      at++;
      const inner = or(depth + 1);
      if (!inner || peek().text !== ')') return undefined;
      at++;
      return inner;
    }
    const left = value();
    const o = left && op();
    const right = o && value();
    return left && o && right ? { kind: 'compare', left, op: o, right } : undefined;
  };
  const chain = (kind: 'and' | 'or', next: (d: number) => Marker | undefined) => (depth: number): Marker | undefined => {
    let left = next(depth);
    while (left && peek().kind === 'name' && peek().text === kind) {
      at++;
      const right = next(depth);
      if (!right) return undefined;
      left = { kind, left, right };
    }
    return left;
  };
  const and = chain('and', atom);
  const or = chain('or', and);
  const marker = or(0);
  return marker && peek().kind === 'end' ? marker : undefined;
}

function markerEnvironment(env: ConditionEnvironment): Map<string, string> {
  const [major, minor, micro] = env.pythonVersion;
  return new Map([
    ['python_version', `${major}.${minor}`], ['python_full_version', `${major}.${minor}.${micro}`],
    ['os_name', 'posix'], ['sys_platform', 'linux'], ['platform_release', env.release], ['platform_system', 'Linux'],
    ['platform_version', env.kernelVersion], ['platform_machine', env.machine],
    ['platform_python_implementation', 'CPython'], ['implementation_name', 'cpython'],
    ['implementation_version', `${major}.${minor}.${micro}`], ['extra', ''],
  ]);
}

function evaluateMarker(marker: Marker, env: ReadonlyMap<string, string>): boolean {
  if (marker.kind !== 'compare') {
    const left = evaluateMarker(marker.left, env);
    return marker.kind === 'and' ? left && evaluateMarker(marker.right, env) : left || evaluateMarker(marker.right, env);
  }
  const get = (v: MarkerValue) => ('literal' in v ? v.literal : env.get(v.variable)!);
  const [left, right] = [get(marker.left), get(marker.right)];
  switch (marker.op) {
    case 'in': return right.includes(left);
    case 'not in': return !right.includes(left);
  }
  if ((marker.op === '==' || marker.op === '!=') && right.endsWith('.*')) {
    // PEP 440 prefix match: `python_full_version == "3.11.*"`.
    const [a, prefix] = [parseVersion(left), parseVersion(right.slice(0, -2))];
    const match = a !== undefined && prefix !== undefined && prefix.release.every((n, i) => (a.release[i] ?? 0) === n);
    return marker.op === '==' ? match : !match;
  }
  const [a, b] = [parseVersion(left), parseVersion(right)];
  if (a && b) {
    const c = compareVersions(a, b);
    switch (marker.op) {
      case '<': return c < 0;
      case '<=': return c <= 0;
      case '>': return c > 0;
      case '>=': return c >= 0;
      case '==': return c === 0;
      case '!=': return c !== 0;
      case '~=': return c >= 0 && b.release.length > 1 && b.release.slice(0, -1).every((n, i) => (a.release[i] ?? 0) === n);
    }
  }
  if (marker.op === '==') return left === right;
  if (marker.op === '!=') return left !== right;
  throw new ConditionError(`cannot compare ${JSON.stringify(left)} ${marker.op} ${JSON.stringify(right)}: not versions`);
}

interface Version {
  readonly release: readonly number[];
  /** Orders what follows the release: dev < a < b < rc < final < post. */
  readonly phase: readonly number[];
}

function parseVersion(text: string): Version | undefined {
  const m = /^\s*v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta)[-_.]?(\d*))?(?:[-_.]?(?:post|r)[-_.]?(\d*))?(?:[-_.]?dev[-_.]?(\d*))?\s*$/i.exec(text);
  if (!m) return undefined;
  const pre = m[2] ? ({ a: 1, alpha: 1, b: 2, beta: 2, c: 3, rc: 3 } as Record<string, number>)[m[2].toLowerCase()]! : 4;
  const phase = [m[5] !== undefined && !m[2] && m[4] === undefined ? 0 : pre, Number(m[3] || 0), m[4] !== undefined ? 1 : 0, Number(m[4] || 0), m[5] !== undefined ? 0 : 1, Number(m[5] || 0)];
  return { release: m[1]!.split('.').map(Number), phase };
}

function compareVersions(a: Version, b: Version): number {
  const n = Math.max(a.release.length, b.release.length);
  for (let i = 0; i < n; i++) {
    const d = (a.release[i] ?? 0) - (b.release[i] ?? 0);
    if (d) return Math.sign(d);
  }
  for (let i = 0; i < a.phase.length; i++) {
    const d = a.phase[i]! - b.phase[i]!;
    if (d) return Math.sign(d);
  }
  return 0;
}

// ---------------------------------------------------------------- Python expressions

type Node =
  | { kind: 'literal'; value: Value; column: number }
  | { kind: 'name'; name: string; column: number }
  | { kind: 'tuple' | 'list'; items: Node[]; column: number }
  | { kind: 'comprehension'; element: Node; target: string; iterable: Node; conditions: Node[]; column: number }
  | { kind: 'attribute'; object: Node; name: string; column: number }
  | { kind: 'call'; callee: Node; args: Node[]; column: number }
  | { kind: 'subscript'; object: Node; index: Node | { start?: Node; stop?: Node }; column: number }
  | { kind: 'unary'; op: string; operand: Node; column: number }
  | { kind: 'binary'; op: string; left: Node; right: Node; column: number }
  | { kind: 'boolean'; op: 'and' | 'or'; left: Node; right: Node; column: number }
  | { kind: 'compare'; first: Node; rest: { op: string; node: Node }[]; column: number };

const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'is', 'for', 'if', 'else', 'lambda', 'True', 'False', 'None']);

class Parser {
  private at = 0;
  private depth = 0;
  constructor(private readonly tokens: readonly Token[]) {}

  private peek(): Token {
    return this.tokens[this.at]!;
  }
  private isOp(text: string): boolean {
    const t = this.peek();
    return t.kind === 'op' && t.text === text;
  }
  private isKeyword(text: string): boolean {
    const t = this.peek();
    return t.kind === 'name' && t.text === text;
  }
  private expectOp(text: string): void {
    if (!this.isOp(text)) this.fail(`expected '${text}'`);
    this.at++;
  }
  private fail(message: string): never {
    const t = this.peek();
    throw new ConditionError(`invalid syntax: ${message}${t.kind === 'end' ? ' at the end' : ` near '${t.text}'`}`, t.column);
  }

  expectEnd(): void {
    if (this.peek().kind !== 'end') this.fail('unexpected text');
  }

  /** `a, b` at the top: zc.buildout evaluates `[expression]` and takes the first item. */
  expressionList(): Node {
    const first = this.expression();
    while (this.isOp(',')) {
      this.at++;
      if (this.peek().kind === 'end') break;
      this.expression();
    }
    return first;
  }

  expression(): Node {
    return this.nested(() => this.or());
  }

  private or(): Node {
    let left = this.and();
    while (this.isKeyword('or')) {
      const column = this.peek().column;
      this.at++;
      left = { kind: 'boolean', op: 'or', left, right: this.and(), column };
    }
    return left;
  }

  private and(): Node {
    let left = this.not();
    while (this.isKeyword('and')) {
      const column = this.peek().column;
      this.at++;
      left = { kind: 'boolean', op: 'and', left, right: this.not(), column };
    }
    return left;
  }

  private not(): Node {
    if (!this.isKeyword('not')) return this.comparison();
    const column = this.peek().column;
    this.at++;
    return { kind: 'unary', op: 'not', operand: this.nested(() => this.not()), column };
  }

  private nested(parse: () => Node): Node {
    if (++this.depth > MAX_DEPTH) this.fail('expression nested too deeply');
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  private comparison(): Node {
    const first = this.arithmetic();
    const rest: { op: string; node: Node }[] = [];
    for (;;) {
      const t = this.peek();
      let op: string | undefined;
      if (t.kind === 'op' && ['<', '>', '==', '>=', '<=', '!='].includes(t.text)) op = t.text;
      else if (this.isKeyword('in')) op = 'in';
      else if (this.isKeyword('not') && this.tokens[this.at + 1]?.text === 'in') op = 'not in';
      else if (this.isKeyword('is')) op = this.tokens[this.at + 1]?.text === 'not' ? 'is not' : 'is';
      if (!op) break;
      this.at += op.includes(' ') ? 2 : 1;
      rest.push({ op, node: this.arithmetic() });
    }
    return rest.length ? { kind: 'compare', first, rest, column: first.column } : first;
  }

  private arithmetic(): Node {
    let left = this.term();
    while (this.isOp('+') || this.isOp('-')) {
      const { text: op, column } = this.tokens[this.at++]!;
      left = { kind: 'binary', op, left, right: this.term(), column };
    }
    return left;
  }

  private term(): Node {
    let left = this.factor();
    while (this.isOp('*') || this.isOp('%') || this.isOp('//')) {
      const { text: op, column } = this.tokens[this.at++]!;
      left = { kind: 'binary', op, left, right: this.factor(), column };
    }
    return left;
  }

  private factor(): Node {
    if (this.isOp('-') || this.isOp('+')) {
      const { text: op, column } = this.tokens[this.at++]!;
      return { kind: 'unary', op, operand: this.nested(() => this.factor()), column };
    }
    return this.postfix(this.atom());
  }

  private postfix(node: Node): Node {
    for (;;) {
      const column = this.peek().column;
      if (this.isOp('.')) {
        this.at++;
        const t = this.peek();
        if (t.kind !== 'name' || KEYWORDS.has(t.text)) this.fail('expected an attribute name');
        this.at++;
        node = { kind: 'attribute', object: node, name: t.text, column: t.column };
      } else if (this.isOp('(')) {
        this.at++;
        const args: Node[] = [];
        while (!this.isOp(')')) {
          args.push(this.expression());
          if (!this.isOp(',')) break;
          this.at++;
        }
        this.expectOp(')');
        node = { kind: 'call', callee: node, args, column };
      } else if (this.isOp('[')) {
        this.at++;
        node = { kind: 'subscript', object: node, index: this.subscript(), column };
        this.expectOp(']');
      } else {
        return node;
      }
    }
  }

  private subscript(): Node | { start?: Node; stop?: Node } {
    const start = this.isOp(':') ? undefined : this.expression();
    if (!this.isOp(':')) return start ?? this.fail('expected an index');
    this.at++;
    const stop = this.isOp(']') ? undefined : this.expression();
    return { ...(start ? { start } : {}), ...(stop ? { stop } : {}) };
  }

  private atom(): Node {
    const t = this.peek();
    const column = t.column;
    if (t.kind === 'number') return (this.at++, { kind: 'literal', value: t.value as number, column });
    if (t.kind === 'string') {
      let value = '';
      while (this.peek().kind === 'string') value += this.tokens[this.at++]!.value as string;
      return { kind: 'literal', value, column };
    }
    if (t.kind === 'name') {
      if (t.text === 'True' || t.text === 'False' || t.text === 'None') {
        this.at++;
        return { kind: 'literal', value: t.text === 'None' ? null : t.text === 'True', column };
      }
      if (KEYWORDS.has(t.text)) this.fail('unexpected keyword');
      this.at++;
      return { kind: 'name', name: t.text, column };
    }
    if (this.isOp('(')) {
      this.at++;
      if (this.isOp(')')) return (this.at++, { kind: 'tuple', items: [], column });
      const first = this.expression();
      if (this.isOp(')')) return (this.at++, first);
      const items = [first];
      while (this.isOp(',')) {
        this.at++;
        if (this.isOp(')')) break;
        items.push(this.expression());
      }
      this.expectOp(')');
      return { kind: 'tuple', items, column };
    }
    if (this.isOp('[')) {
      this.at++;
      const items: Node[] = [];
      if (!this.isOp(']')) {
        const element = this.expression();
        if (this.isKeyword('for')) return this.comprehension(element, column);
        items.push(element);
        while (this.isOp(',')) {
          this.at++;
          if (this.isOp(']')) break;
          items.push(this.expression());
        }
      }
      this.expectOp(']');
      return { kind: 'list', items, column };
    }
    return this.fail('expected a value');
  }

  private comprehension(element: Node, column: number): Node {
    this.at++; // for
    const target = this.peek();
    if (target.kind !== 'name' || KEYWORDS.has(target.text)) this.fail('expected a loop variable');
    this.at++;
    if (!this.isKeyword('in')) this.fail("expected 'in'");
    this.at++;
    const iterable = this.or();
    const conditions: Node[] = [];
    while (this.isKeyword('if')) {
      this.at++;
      conditions.push(this.or());
    }
    this.expectOp(']');
    return { kind: 'comprehension', element, target: target.text, iterable, conditions, column };
  }
}

// ---------------------------------------------------------------- values

type Value = null | boolean | number | string | Value[] | Tuple | Dict | PyObject | PyFunction;

/** Python dicts, as `platform.freedesktop_os_release()` returns; subscript only. */
class Dict {
  constructor(readonly entries: ReadonlyMap<string, Value>) {}
}

/** Python tuples: compared with tuples only, like Python. */
class Tuple {
  constructor(readonly items: readonly Value[]) {}
}

/** A module or object whose attributes are a fixed whitelist. */
class PyObject {
  constructor(readonly typeName: string, readonly attributes: Readonly<Record<string, Value>>) {}
}

class PyFunction {
  constructor(readonly name: string, readonly call: (args: Value[], column: number) => Value) {}
}

function typeName(v: Value): string {
  if (v === null) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string') return 'str';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Tuple) return 'tuple';
  if (v instanceof PyFunction) return 'builtin_function_or_method';
  if (v instanceof Dict) return 'dict';
  return v.typeName;
}

function truthy(v: Value): boolean {
  if (v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Tuple) return v.items.length > 0;
  if (v instanceof Dict) return v.entries.size > 0;
  return true;
}

function items(v: Value, column: number): readonly Value[] {
  if (typeof v === 'string') return [...v];
  if (Array.isArray(v)) return v;
  if (v instanceof Tuple) return v.items;
  if (v instanceof Dict) return [...v.entries.keys()];
  throw new ConditionError(`'${typeName(v)}' object is not iterable`, column);
}

const isNumber = (v: Value): v is number | boolean => typeof v === 'number' || typeof v === 'boolean';

function equal(a: Value, b: Value): boolean {
  if (isNumber(a) && isNumber(b)) return Number(a) === Number(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]!));
  if (a instanceof Tuple && b instanceof Tuple) return a.items.length === b.items.length && a.items.every((x, i) => equal(x, b.items[i]!));
  return a === b;
}

/** Python ordering: numbers, strings, and lists or tuples item by item; anything else is a TypeError. */
function order(a: Value, b: Value, op: string, column: number): number {
  if (isNumber(a) && isNumber(b)) return Math.sign(Number(a) - Number(b));
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  const seq = (v: Value) => (Array.isArray(v) ? v : v instanceof Tuple ? v.items : undefined);
  const [x, y] = [seq(a), seq(b)];
  if (x && y && Array.isArray(a) === Array.isArray(b)) {
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      if (!equal(x[i]!, y[i]!)) return order(x[i]!, y[i]!, op, column);
    }
    return Math.sign(x.length - y.length);
  }
  throw new ConditionError(`'${op}' not supported between instances of '${typeName(a)}' and '${typeName(b)}'`, column);
}

function compare(op: string, a: Value, b: Value, column: number): boolean {
  switch (op) {
    case '==': return equal(a, b);
    case '!=': return !equal(a, b);
    case 'is': return a === b || (a === null && b === null);
    case 'is not': return !(a === b || (a === null && b === null));
    case 'in':
    case 'not in': {
      const found = typeof b === 'string'
        ? typeof a === 'string' ? b.includes(a) : fail(`'in <string>' requires string as left operand, not ${typeName(a)}`, column)
        : items(b, column).some((x) => equal(x, a));
      return op === 'in' ? found : !found;
    }
  }
  const c = order(a, b, op, column);
  return op === '<' ? c < 0 : op === '<=' ? c <= 0 : op === '>' ? c > 0 : c >= 0;
}

function fail(message: string, column?: number): never {
  throw new ConditionError(message, column);
}

function arithmetic(op: string, a: Value, b: Value, column: number): Value {
  if (isNumber(a) && isNumber(b)) {
    const [x, y] = [Number(a), Number(b)];
    if ((op === '%' || op === '//') && y === 0) fail('division by zero', column);
    return op === '+' ? x + y : op === '-' ? x - y : op === '*' ? x * y : op === '%' ? ((x % y) + y) % y : Math.floor(x / y);
  }
  if (op === '+' && typeof a === 'string' && typeof b === 'string') return checkSize(a + b, column);
  if (op === '+' && Array.isArray(a) && Array.isArray(b)) return checkSize([...a, ...b], column);
  if (op === '+' && a instanceof Tuple && b instanceof Tuple) return new Tuple(checkSize([...a.items, ...b.items], column));
  if (op === '*' && typeof a === 'string' && typeof b === 'number' && Number.isInteger(b)) {
    if (a.length * b > MAX_ITEMS) fail('result too large', column);
    return a.repeat(Math.max(0, b));
  }
  if (op === '%' && typeof a === 'string') fail('string formatting with % is not supported', column);
  return fail(`unsupported operand type(s) for ${op}: '${typeName(a)}' and '${typeName(b)}'`, column);
}

function checkSize<T extends string | Value[]>(v: T, column: number): T {
  if (v.length > MAX_ITEMS) fail('result too large', column);
  return v;
}

// ---------------------------------------------------------------- globals

const fn = (name: string, call: (args: Value[], column: number) => Value) => new PyFunction(name, call);

function str(v: Value, column: number): string {
  if (typeof v === 'string') return v;
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v).includes('.') ? String(v) : `${v}.0`;
  return fail(`str() of a ${typeName(v)} is not supported`, column);
}

function argument(args: Value[], i: number, kind: 'string' | 'number', name: string, column: number): never | string | number {
  const v = args[i];
  if (typeof v !== kind) fail(`${name}() argument ${i + 1} must be ${kind === 'string' ? 'str' : 'int'}, not ${typeName(v ?? null)}`, column);
  return v as string | number;
}

/** The methods of str that conditions use (e.g. `platform.release().split(".")`). */
function stringMethod(s: string, name: string, column: number): PyFunction {
  const text = (args: Value[], i: number) => argument(args, i, 'string', name, column) as string;
  const strip = (chars: Value | undefined, left: boolean, right: boolean) => {
    const set = typeof chars === 'string' ? chars : ' \t\n\r\x0b\x0c';
    let [a, b] = [0, s.length];
    while (left && a < b && set.includes(s[a]!)) a++;
    while (right && b > a && set.includes(s[b - 1]!)) b--;
    return s.slice(a, b);
  };
  const prefixes = (v: Value | undefined): string[] =>
    v instanceof Tuple ? v.items.map((x) => str(x, column)) : [argument([v ?? null], 0, 'string', name, column) as string];
  const methods: Record<string, (args: Value[]) => Value> = {
    split: (args) => {
      const sep = args[0];
      const parts = sep === undefined || sep === null ? s.split(/\s+/).filter(Boolean) : s.split(text(args, 0));
      if (typeof sep === 'string' && !sep) fail('empty separator', column);
      return parts;
    },
    strip: (args) => strip(args[0], true, true),
    lstrip: (args) => strip(args[0], true, false),
    rstrip: (args) => strip(args[0], false, true),
    lower: () => s.toLowerCase(),
    upper: () => s.toUpperCase(),
    startswith: (args) => prefixes(args[0]).some((p) => s.startsWith(p)),
    endswith: (args) => prefixes(args[0]).some((p) => s.endsWith(p)),
    replace: (args) => checkSize(s.replaceAll(text(args, 0), text(args, 1)), column),
    find: (args) => s.indexOf(text(args, 0)),
    count: (args) => (text(args, 0) ? s.split(text(args, 0)).length - 1 : s.length + 1),
    isdigit: () => /^[0-9]+$/.test(s),
    join: (args) => checkSize(items(args[0] ?? null, column).map((x) => (typeof x === 'string' ? x : fail('join() takes strings', column))).join(s), column),
  };
  const method = methods[name];
  if (!method) fail(`'str' object has no attribute '${name}' here`, column);
  return fn(name, method);
}

function readTextFile(path: Value, column: number): string {
  if (typeof path !== 'string') fail('open() takes a path', column);
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    return fail(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, column);
  }
}

/** /etc/os-release as Python's platform.freedesktop_os_release() reads it. */
function osRelease(column: number): Dict {
  for (const path of ['/etc/os-release', '/usr/lib/os-release']) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    const entries = new Map<string, Value>([['NAME', 'Linux'], ['ID', 'linux'], ['PRETTY_NAME', 'Linux']]);
    for (const line of text.split('\n')) {
      const m = /^([A-Za-z0-9_]+)=(.*)$/.exec(line.trim());
      if (!m) continue;
      const raw = m[2]!;
      const quoted = /^(["'])(.*)\1$/.exec(raw);
      entries.set(m[1]!, (quoted ? quoted[2]! : raw).replace(/\\(["'$`\\])/g, '$1'));
    }
    return new Dict(entries);
  }
  return fail('no /etc/os-release or /usr/lib/os-release on this machine', column);
}

function isAccessible(path: Value, mode: Value): boolean {
  if (typeof path !== 'string' || typeof mode !== 'number') return false;
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

function isKind(path: Value, kind: 'dir' | 'file' | 'any'): boolean {
  if (typeof path !== 'string') return false;
  try {
    const stat = statSync(path);
    return kind === 'any' || (kind === 'dir' ? stat.isDirectory() : stat.isFile());
  } catch {
    return false;
  }
}

function globals(env: ConditionEnvironment): Map<string, Value> {
  const [major, minor, micro] = env.pythonVersion;
  const versionInfo = new Tuple([major, minor, micro, 'final', 0]);
  const uname = new PyObject('uname_result', { sysname: 'Linux', nodename: '', release: env.release, version: env.kernelVersion, machine: env.machine });
  const g = new Map<string, Value>([
    ['sys', new PyObject('module', {
      version_info: versionInfo, platform: 'linux', byteorder: env.littleEndian ? 'little' : 'big',
      maxsize: env.bits === 64 ? 2 ** 63 - 1 : 2 ** 31 - 1, version: `${major}.${minor}.${micro}`,
      implementation: new PyObject('namespace', { name: 'cpython' }),
    })],
    ['os', new PyObject('module', {
      name: 'posix', sep: '/', uname: fn('uname', () => uname),
      F_OK: constants.F_OK, R_OK: constants.R_OK, W_OK: constants.W_OK, X_OK: constants.X_OK,
      access: fn('access', ([p, m]) => isAccessible(p ?? null, m ?? null)),
      path: new PyObject('module', {
        exists: fn('exists', ([p]) => isKind(p ?? null, 'any') || (typeof p === 'string' && existsSync(p))),
        isdir: fn('isdir', ([p]) => isKind(p ?? null, 'dir')),
        isfile: fn('isfile', ([p]) => isKind(p ?? null, 'file')),
      }),
    })],
    ['platform', new PyObject('module', {
      machine: fn('machine', () => env.machine), system: fn('system', () => 'Linux'), release: fn('release', () => env.release),
      version: fn('version', () => env.kernelVersion), python_version: fn('python_version', () => `${major}.${minor}.${micro}`),
      python_version_tuple: fn('python_version_tuple', () => new Tuple([String(major), String(minor), String(micro)])),
      python_implementation: fn('python_implementation', () => 'CPython'),
      architecture: fn('architecture', () => new Tuple([`${env.bits}bit`, 'ELF'])), uname: fn('uname', () => uname),
      freedesktop_os_release: fn('freedesktop_os_release', (_, c) => osRelease(c)),
    })],
    ['re', new PyObject('module', {})],
    ['python2', false], ['python3', true], ['cpython', true], ['pypy', false], ['jython', false], ['ironpython', false],
    ['linux', true], ['windows', false], ['cygwin', false], ['solaris', false], ['macosx', false], ['posix', true],
    ['bits32', env.bits === 32], ['bits64', env.bits === 64], ['little_endian', env.littleEndian], ['big_endian', !env.littleEndian],
    ['len', fn('len', ([v], c) => items(v ?? null, c).length)],
    ['int', fn('int', ([v], c) => {
      if (typeof v === 'string' && /^\s*[-+]?[0-9_]+\s*$/.test(v)) return Number(v.trim().replaceAll('_', ''));
      if (isNumber(v ?? null)) return Math.trunc(Number(v));
      return fail(`invalid literal for int(): ${JSON.stringify(v)}`, c);
    })],
    ['str', fn('str', ([v], c) => str(v ?? '', c))],
    ['bool', fn('bool', ([v]) => truthy(v ?? false))],
    ['tuple', fn('tuple', ([v], c) => new Tuple(v === undefined ? [] : items(v, c)))],
    ['list', fn('list', ([v], c) => (v === undefined ? [] : [...items(v, c)]))],
    ['any', fn('any', ([v], c) => items(v ?? null, c).some(truthy))],
    ['all', fn('all', ([v], c) => items(v ?? null, c).every(truthy))],
    ['min', fn('min', (args, c) => extreme(args, c, -1))],
    ['max', fn('max', (args, c) => extreme(args, c, 1))],
    ['chr', fn('chr', (args, c) => String.fromCodePoint(argument(args, 0, 'number', 'chr', c) as number))],
    ['ord', fn('ord', (args, c) => (argument(args, 0, 'string', 'ord', c) as string).codePointAt(0) ?? fail('ord() of an empty string', c))],
    ['open', fn('open', ([p], c) => {
      const content = readTextFile(p ?? null, c);
      return new PyObject('TextIOWrapper', { read: fn('read', () => content) });
    })],
  ]);
  for (let v = 24; v <= 27; v++) g.set(`python${v}`, false);
  for (let v = 0; v <= 15; v++) g.set(`python3${v}`, major === 3 && minor === v);
  return g;
}

function extreme(args: Value[], column: number, sign: 1 | -1): Value {
  const values = args.length === 1 ? items(args[0]!, column) : args;
  if (!values.length) fail('arg is an empty sequence', column);
  return values.reduce((best, v) => (order(v, best, '<', column) * sign > 0 ? v : best));
}

// ---------------------------------------------------------------- evaluation

class Evaluator {
  private readonly globals: Map<string, Value>;
  constructor(env: ConditionEnvironment) {
    this.globals = globals(env);
  }

  eval(node: Node, locals: ReadonlyMap<string, Value>): Value {
    switch (node.kind) {
      case 'literal': return node.value;
      case 'name': {
        const v = locals.has(node.name) ? locals.get(node.name)! : this.globals.get(node.name);
        if (v === undefined) fail(`name '${node.name}' is not defined`, node.column);
        return v;
      }
      case 'tuple': return new Tuple(node.items.map((n) => this.eval(n, locals)));
      case 'list': return node.items.map((n) => this.eval(n, locals));
      case 'comprehension': {
        const out: Value[] = [];
        for (const item of items(this.eval(node.iterable, locals), node.column)) {
          const scope = new Map(locals).set(node.target, item);
          if (node.conditions.every((c) => truthy(this.eval(c, scope)))) out.push(this.eval(node.element, scope));
        }
        return out;
      }
      case 'attribute': {
        const object = this.eval(node.object, locals);
        if (typeof object === 'string') return stringMethod(object, node.name, node.column);
        if (object instanceof Tuple && (node.name === 'major' || node.name === 'minor' || node.name === 'micro')) {
          return object.items[['major', 'minor', 'micro'].indexOf(node.name)] ?? null;
        }
        if (object instanceof PyObject && Object.hasOwn(object.attributes, node.name)) return object.attributes[node.name]!;
        return fail(`'${typeName(object)}' object has no attribute '${node.name}' (or it is not available in conditions)`, node.column);
      }
      case 'call': {
        const callee = this.eval(node.callee, locals);
        if (!(callee instanceof PyFunction)) fail(`'${typeName(callee)}' object is not callable`, node.column);
        return callee.call(node.args.map((a) => this.eval(a, locals)), node.column);
      }
      case 'subscript': return this.subscript(node, locals);
      case 'unary': {
        const v = this.eval(node.operand, locals);
        if (node.op === 'not') return !truthy(v);
        if (!isNumber(v)) fail(`bad operand type for unary ${node.op}: '${typeName(v)}'`, node.column);
        return node.op === '-' ? -Number(v) : Number(v);
      }
      case 'binary': return arithmetic(node.op, this.eval(node.left, locals), this.eval(node.right, locals), node.column);
      case 'boolean': {
        const left = this.eval(node.left, locals);
        return (node.op === 'and') !== truthy(left) ? left : this.eval(node.right, locals);
      }
      case 'compare': {
        let left = this.eval(node.first, locals);
        for (const { op, node: next } of node.rest) {
          const right = this.eval(next, locals);
          if (!compare(op, left, right, next.column)) return false;
          left = right;
        }
        return true;
      }
    }
  }

  private subscript(node: Extract<Node, { kind: 'subscript' }>, locals: ReadonlyMap<string, Value>): Value {
    const object = this.eval(node.object, locals);
    if (object instanceof Dict) {
      const key = 'kind' in node.index ? this.eval(node.index, locals) : fail('dicts cannot be sliced', node.column);
      const v = typeof key === 'string' ? object.entries.get(key) : undefined;
      return v ?? fail(`KeyError: ${JSON.stringify(key)}`, node.column);
    }
    const seq = typeof object === 'string' ? [...object] : items(object, node.column);
    const index = (n: Node | undefined, fallback: number): number => {
      if (!n) return fallback;
      const v = this.eval(n, locals);
      if (!isNumber(v) || !Number.isInteger(Number(v))) fail('indices must be integers', n.column);
      const i = Number(v);
      return i < 0 ? Math.max(0, seq.length + i) : Math.min(i, seq.length);
    };
    if ('kind' in node.index) {
      const v = this.eval(node.index, locals);
      if (!isNumber(v) || !Number.isInteger(Number(v))) fail('indices must be integers', node.column);
      const i = Number(v) < 0 ? seq.length + Number(v) : Number(v);
      if (i < 0 || i >= seq.length) fail(`${typeName(object)} index out of range`, node.column);
      return seq[i]!;
    }
    const part = seq.slice(index(node.index.start, 0), index(node.index.stop, seq.length));
    return typeof object === 'string' ? part.join('') : object instanceof Tuple ? new Tuple(part) : part;
  }
}
