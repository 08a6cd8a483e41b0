// Phase 2 data: merged, not yet substituted option values, each with the history of
// where its parts came from (zc.buildout's SectionKey), which `annotate` prints.
import type { Location } from './errors.js';

export type Origin = Location | 'DEFAULT_VALUE' | 'COMPUTED_VALUE' | 'COMMAND_LINE_VALUE' | 'IMPLICIT_VALUE';
export type Operation = 'SET' | 'ADD' | 'REMOVE' | 'OVERRIDE' | 'DIRECTORY';

export interface HistoryItem {
  readonly operation: Operation;
  readonly value: string;
  readonly origin: Origin;
}

/** An option value and how it came to be. Immutable: every change makes a new one. */
export class RawValue {
  constructor(readonly value: string, readonly history: readonly HistoryItem[]) {}

  static set(value: string, origin: Origin): RawValue {
    return new RawValue(value, [{ operation: 'SET', value, origin }]);
  }

  get origin(): Origin {
    return this.history[this.history.length - 1]!.origin;
  }

  /** `+=`: append the lines of `added`. */
  add(added: string, origin: Origin): RawValue {
    return new RawValue(`${this.value}\n${added}`, [...this.history, { operation: 'ADD', value: added, origin }]);
  }

  /** `-=`: drop every line equal to one of the lines of `removed`. */
  remove(removed: string, origin: Origin): RawValue {
    const drop = new Set(removed.split('\n'));
    const value = this.value.split('\n').filter((line) => !drop.has(line)).join('\n');
    return new RawValue(value, [...this.history, { operation: 'REMOVE', value: removed, origin }]);
  }

  /** A later assignment wins; an increment carries its own history along. */
  override(next: RawValue): RawValue {
    const last = next.history[next.history.length - 1]!;
    if (last.operation === 'ADD' || last.operation === 'REMOVE') return next;
    return new RawValue(next.value, [...this.history, { operation: 'OVERRIDE', value: next.value, origin: next.origin }]);
  }

  /** A directory option made absolute. */
  directory(value: string): RawValue {
    return new RawValue(value, [...this.history, { operation: 'DIRECTORY', value, origin: this.origin }]);
  }
}

export type RawSection = Map<string, RawValue>;
export type RawConfig = Map<string, RawSection>;

export function isOrigin(origin: Origin): origin is Location {
  return typeof origin === 'object';
}
