// What the machine itself did during a benchmark, for reading its figures: on a shared virtual machine the
// hypervisor gives part of the CPU time to other guests ("steal" in /proc/stat), a share that changes from
// minute to minute — measured here at 0 to 56% — and every timing of a run slows with it.
import { readFileSync } from 'node:fs';

export interface MachineTicks {
  /** All CPU time of the machine so far (USER_HZ ticks, every CPU). */
  total: number;
  /** Of which stolen by the hypervisor. */
  steal: number;
}

/** The machine's CPU ticks now (zeros where there is no /proc/stat). */
export function machineTicks(): MachineTicks {
  let line = '';
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  } catch {
    // not Linux
  }
  // cpu  user nice system idle iowait irq softirq steal …
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: fields.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0), steal: fields[7] ?? 0 };
}

/** The share of the machine's CPU time stolen between two readings (0 to 1). */
export function stealShare(before: MachineTicks, after: MachineTicks): number {
  const total = after.total - before.total;
  return total > 0 ? (after.steal - before.steal) / total : 0;
}
