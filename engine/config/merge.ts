// How parsed files, defaults and command-line assignments fold into one configuration:
// `=` overrides, `+=`/`-=` add or remove lines (research/buildout.md §2.3).
import { RawValue, type RawConfig, type RawSection } from './raw.js';
import { pyCompare } from './pytext.js';

const IMPLICIT = RawValue.set('', 'IMPLICIT_VALUE');

function stripRight(s: string, chars: string): string {
  let end = s.length;
  while (end > 0 && chars.includes(s[end - 1]!)) end--;
  return s.slice(0, end);
}

/** `x +` → `x`; `x -` → `x`; undefined for a plain key. */
export function incrementTarget(key: string): { option: string; op: '+' | '-' } | undefined {
  if (key.endsWith('+')) return { option: stripRight(key, ' +'), op: '+' };
  if (key.endsWith('-')) return { option: stripRight(key, ' -'), op: '-' };
  return undefined;
}

/**
 * Lays `next` over `into` (changed in place). Increments apply first, `+` before `-` of one
 * option, to this same section's plain value if it has one, else to what `into` has, else to ''.
 */
export function updateSection(into: RawSection, next: RawSection): void {
  const pending = new Map(next);
  const keys = [...next.keys()].sort((a, b) => {
    const ka = stripRight(a, ' +');
    const kb = stripRight(b, ' +');
    return pyCompare(ka, kb) || pyCompare(a.slice(-1), b.slice(-1));
  });
  for (const key of keys) {
    const inc = incrementTarget(key);
    if (!inc) continue;
    const increment = next.get(key)!;
    const base = pending.get(inc.option) ?? into.get(inc.option) ?? IMPLICIT;
    pending.set(inc.option, inc.op === '+'
      ? base.add(increment.value, increment.origin)
      : base.remove(increment.value, increment.origin));
    pending.delete(key);
  }
  for (const [key, value] of pending) {
    const old = into.get(key);
    into.set(key, old ? old.override(value) : value);
  }
}

/**
 * Folds one configuration over another (changed in place). A section new at this point
 * turns a lone `+=` into an assignment and a lone `-=` into ''; a new macro user keeps
 * its increments for when the macro is expanded.
 */
export function updateConfig(into: RawConfig, next: RawConfig): void {
  for (const [name, section] of next) {
    const existing = into.get(name);
    if (existing) {
      updateSection(existing, section);
    } else if (section.has('<')) {
      into.set(name, new Map(section));
    } else {
      const temp = new Map(section);
      for (const key of [...section.keys()].sort(pyCompare)) {
        const inc = incrementTarget(key);
        if (!inc || temp.has(inc.option)) continue;
        const value = temp.get(key)!;
        temp.set(inc.option, inc.op === '+' ? value : value.remove(value.value, 'IMPLICIT_VALUE'));
        temp.delete(key);
      }
      const result: RawSection = new Map();
      updateSection(result, temp);
      into.set(name, result);
    }
  }
}
