// Declarative assertions: each names a rule, says it in a sentence, and lists what broke it in a record of
// the run. A scenario declares the list it is judged by; `judge` checks them all once the run is over, so a
// run reports every broken rule, not only the first.
import type { AssertionResult } from './types.js';

/** At most this many violations are kept per assertion (the count of the others is said). */
export const MAX_VIOLATIONS = 200;

export interface Assertion<Record> {
  id: string;
  description: string;
  /** What breaks the rule in `record`, one line each; empty when it holds. */
  violations(record: Record): string[];
}

export function assertion<Record>(id: string, description: string, violations: (record: Record) => string[]): Assertion<Record> {
  return { id, description, violations };
}

/** Checks every assertion against the record; one that throws counts as broken, with its error. */
export function judge<Record>(assertions: readonly Assertion<Record>[], record: Record): AssertionResult[] {
  return assertions.map(({ id, description, violations: check }) => {
    let violations: string[];
    try {
      violations = check(record);
    } catch (error) {
      violations = [`the check itself failed: ${(error as Error).message}`];
    }
    const kept = violations.length > MAX_VIOLATIONS
      ? [...violations.slice(0, MAX_VIOLATIONS), `… ${violations.length - MAX_VIOLATIONS} more`]
      : violations;
    return { id, description, ok: violations.length === 0, violations: kept };
  });
}
