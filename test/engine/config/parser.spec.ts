import { strict as assert } from 'node:assert';
import { parseConfig, type ParsedFile } from '../../../engine/config/parser.js';

const never = (): boolean => {
  throw new Error('no condition expected');
};

function parse(text: string, evaluate: (e: string) => boolean = never): ParsedFile {
  return parseConfig(text, 'test.cfg', evaluate);
}

function values(text: string, section = 's'): Record<string, string> {
  const parsed = parse(text);
  assert.deepEqual(parsed.diagnostics, []);
  return Object.fromEntries([...parsed.sections.get(section)!.options].map(([k, o]) => [k, o.value]));
}

describe('engine/config parser', () => {
  it('keeps text after # in values: comments are whole lines at column 1 only', () => {
    assert.deepEqual(values('[s] # header comment\na = 1 # not a comment\nb=2;x\n'), { a: '1 # not a comment', b: '2;x' });
  });

  it('dedents a block value and keeps its blank lines and indented comments', () => {
    const text = '[s]\nc =\n  line1\n# dropped\n  # kept\n\n  line3\n';
    assert.deepEqual(values(text), { c: 'line1\n# kept\n\nline3' });
  });

  it('strips continuation lines of a value that starts on its first line and drops blank ones', () => {
    assert.deepEqual(values('[s]\nfirst = a\n   b\n\n   c\n'), { first: 'a\nb\nc' });
  });

  it('does not dedent when tabs and spaces differ (textwrap.dedent)', () => {
    assert.deepEqual(values('[s]\nv =\n  x\n\ty\n'), { v: '  x\n\ty' });
  });

  it('splits an option at the first = and keeps names case-sensitive', () => {
    assert.deepEqual(values('[s]\ne = x = y\nE = upper\n'), { e: 'x = y', E: 'upper' });
  });

  it('keeps the operator in the key and accumulates repeated += in one section', () => {
    assert.deepEqual(values('[s]\nv += a\nv += b\nw -= c\n'), { 'v +': 'a\nb', 'w -': 'c' });
  });

  it('lets a later plain assignment drop pending increments', () => {
    assert.deepEqual(values('[s]\nw += 2\nw = 3\n'), { w: '3' });
  });

  it('reads <= as option < and => as <part-dependencies>', () => {
    assert.deepEqual(values('[s]\n<= a\n  b\n=> p q\n'), { '<': 'a\nb', '<part-dependencies>': 'p q' });
  });

  it('merges a repeated section header; the last value wins', () => {
    assert.deepEqual(values('[s]\na = 1\nb = 1\n[t]\n[s]\na = 2\n'), { a: '2', b: '1' });
  });

  it('accepts names with / . + < = characters and spaces inside the brackets', () => {
    const parsed = parse('[ZEO/scripts]\na = 1\n[ s2 ]  ; comment\nb = 2\n');
    assert.deepEqual([...parsed.sections.keys()], ['ZEO/scripts', 's2']);
  });

  it('treats an indented [x] as value text and a column-1 [x] as a header', () => {
    assert.deepEqual(values('[s]\nv = 1\n  [not-a-header]\n  more\n'), { v: '1\n[not-a-header]\nmore' });
  });

  it('reads CRLF and lone CR line ends as Python universal newlines do', () => {
    assert.deepEqual(values('[s]\r\na = 1\r\nb =\r\n  x\r\n  y\r'), { a: '1', b: 'x\ny' });
  });

  it('reports every bad line with its number', () => {
    const parsed = parse('\n# c\n[s]\n  indented = 1\nfoo: bar\nmy key = v\nnoequals\n[bad name]\n[ok] trailing\n');
    assert.deepEqual(parsed.diagnostics.map((d) => d.line), [4, 5, 6, 7, 8, 9]);
    assert.ok(parsed.diagnostics.every((d) => d.file === 'test.cfg' && d.message.length > 0));
  });

  it('reports an indented first option as a bad line', () => {
    const parsed = parse('[s]\n  indented = 1\n');
    assert.deepEqual(parsed.diagnostics.map((d) => d.line), [2]);
  });

  it('reports text before the first header', () => {
    assert.deepEqual(parse('a = 1\n[s]\n').diagnostics.map((d) => d.line), [1]);
  });

  it('skips a section whose condition is false, with its options and continuation lines', () => {
    const parsed = parse('[s]\na = 1\n[t:no]\nb = 2\n  more\n[s:yes]\nc = 3\n', (e) => e === 'yes');
    assert.deepEqual([...parsed.sections.keys()], ['s']);
    assert.deepEqual(Object.fromEntries([...parsed.sections.get('s')!.options].map(([k, o]) => [k, o.value])), { a: '1', c: '3' });
  });

  it('treats [name:] as an unconditional header', () => {
    assert.deepEqual(values('[s:]\na = 1\n'), { a: '1' });
  });

  it('reports a bad condition at its line and column', () => {
    const parsed = parse('[s]\n[t:bad expr]\n', () => {
      throw Object.assign(new Error('invalid syntax'), { column: 5 });
    });
    assert.equal(parsed.diagnostics.length, 1);
    assert.equal(parsed.diagnostics[0]!.line, 2);
    assert.equal(parsed.diagnostics[0]!.column, 8);
  });

  it('reports options after a false first conditional header as text before any header', () => {
    const parsed = parse('[s:no]\nx = 1\n', () => false);
    assert.deepEqual(parsed.diagnostics.map((d) => d.line), [2]);
  });

  it('records the line of each option', () => {
    const parsed = parse('[s]\n\na = 1\nb =\n  x\n');
    assert.deepEqual([...parsed.sections.get('s')!.options.values()].map((o) => o.line), [3, 4]);
  });
});
