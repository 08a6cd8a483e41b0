// Text helpers that behave exactly as the Python functions zc.buildout relies on.

/** Characters for which Python's str.isspace() is true (and which `re`'s \s matches). */
const PY_SPACE = new Set(
  [...'\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000'].concat(
    Array.from({ length: 11 }, (_, i) => String.fromCharCode(0x2000 + i)),
  ),
);

/** The same set as the body of a RegExp character class (for Python's `\s`). */
export const PY_SPACE_CLASS = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

export function isPySpace(ch: string | undefined): boolean {
  return ch !== undefined && PY_SPACE.has(ch);
}

export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_SPACE.has(s[end - 1]!)) end--;
  return s.slice(0, end);
}

export function pyLstrip(s: string): string {
  let start = 0;
  while (start < s.length && PY_SPACE.has(s[start]!)) start++;
  return s.slice(start);
}

export function pyStrip(s: string): string {
  return pyLstrip(pyRstrip(s));
}

/** Python's textwrap.dedent: only spaces and tabs count, and they are not equivalent. */
export function dedent(text: string): string {
  const lines = text.split('\n').map((line) => (/^[ \t]+$/.test(line) ? '' : line));
  let margin: string | undefined;
  for (const line of lines) {
    const m = /^[ \t]*(?=[^ \t])/.exec(line);
    if (!m) continue;
    const indent = m[0];
    if (margin === undefined || margin.startsWith(indent)) margin = indent;
    else if (!indent.startsWith(margin)) {
      let i = 0;
      while (i < margin.length && i < indent.length && margin[i] === indent[i]) i++;
      margin = margin.slice(0, i);
    }
  }
  if (!margin) return lines.join('\n');
  const m = margin;
  return lines.map((line) => (line.startsWith(m) ? line.slice(m.length) : line)).join('\n');
}

/** `re.sub(r'^(\s*\n)+', '', text)`: drop leading lines that hold only whitespace. */
export function dropLeadingBlankLines(text: string): string {
  let cut = 0;
  for (let i = 0; i < text.length && PY_SPACE.has(text[i]!); i++) {
    if (text[i] === '\n') cut = i + 1;
  }
  return text.slice(cut);
}

/** Python's string ordering: by code point (JS `<` compares UTF-16 units). */
export function pyCompare(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** Python's str.split() with no argument: split on runs of whitespace, no empty items. */
export function pySplit(s: string): string[] {
  const out: string[] = [];
  let word = '';
  for (const ch of s) {
    if (isPySpace(ch)) {
      if (word) out.push(word);
      word = '';
    } else word += ch;
  }
  if (word) out.push(word);
  return out;
}

/** posixpath.join for two parts: an absolute second part replaces the first; no normalising. */
export function pyJoin(a: string, b: string): string {
  if (b.startsWith('/')) return b;
  if (!a || a.endsWith('/')) return a + b;
  return `${a}/${b}`;
}

/** posixpath.dirname: everything before the last slash, trailing slashes dropped. */
export function pyDirname(p: string): string {
  const head = p.slice(0, p.lastIndexOf('/') + 1);
  return head && !/^\/+$/.test(head) ? head.replace(/\/+$/, '') : head;
}
