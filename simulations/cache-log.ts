// What a node's build cache did, read from the lines it logs (the node reports these only in its log).
// Refusals while supplying a release: providers that sent bytes contradicting an entry
// (node/cache/remote.ts), entries dropped as invalid — a bad signature — and entries ignored because
// their builder is not trusted (node/cache/artifacts.ts; only in verbose logs). And, as a provider, the
// blobs it began sending to others (protocols/cache; only in verbose logs).
import type { LogLine, NodeLog } from './in-process-nodes.js';
import type { Clock } from './supplies.js';

/** Times are seconds on the scenario's clock. */
export interface Refusals {
  /** A provider dropped at a bad chunk (or size, or CID); the fetch went on with the next one. */
  badProviders: { peer: string; cid: string; atS: number }[];
  /** An entry refused as invalid (bad signature, bad schema), with the peer that gave it. */
  droppedEntries: { from: string; reason: string; atS: number }[];
  /** A valid entry of a builder this node does not trust. */
  ignoredEntries: { from: string; builder: string; atS: number }[];
}

const SENDING = /^sending (\S+) from byte (\d+) of \d+ to (\S+)$/;
const BAD_PROVIDER = /^provider (\S+) sent bad data for (\S+):/;
const DROPPED_ENTRY = /^dropped a cache entry for \S+ from (\S+): (.*)$/;
const IGNORED_ENTRY = /^ignored an entry for \S+ from (\S+): its builder (\S+) is not trusted$/;

/** Whether a log line says the node refused something (the lines a scenario about refusals keeps). */
export function isRefusal(line: LogLine): boolean {
  return BAD_PROVIDER.test(line.message) || DROPPED_ENTRY.test(line.message) || IGNORED_ENTRY.test(line.message);
}

/** The refusals among `log`'s lines written since `clock` started, timed by it (seconds). */
export function refusalsIn(log: NodeLog, clock: Clock): Refusals {
  const refusals: Refusals = { badProviders: [], droppedEntries: [], ignoredEntries: [] };
  for (const line of log.lines) {
    if (line.at < clock.origin) continue;
    const { message } = line;
    const atS = (line.at - clock.origin) / 1000;
    let match: RegExpExecArray | null;
    if ((match = BAD_PROVIDER.exec(message))) refusals.badProviders.push({ peer: match[1]!, cid: match[2]!, atS });
    else if ((match = DROPPED_ENTRY.exec(message))) refusals.droppedEntries.push({ from: match[1]!, reason: match[2]!, atS });
    else if ((match = IGNORED_ENTRY.exec(message))) refusals.ignoredEntries.push({ from: match[1]!, builder: match[2]!, atS });
  }
  return refusals;
}

/** A blob a provider began to send: to whom, from which byte, when (seconds on the scenario's clock). */
export interface Sent {
  to: string;
  cid: string;
  offset: number;
  atS: number;
}

/** Whether a log line says the node began sending a blob. */
export function isSending(line: LogLine): boolean {
  return SENDING.test(line.message);
}

/** The blobs `log`'s node began sending since `clock` started. */
export function sentIn(log: NodeLog, clock: Clock): Sent[] {
  return log.lines.flatMap((line) => {
    const match = line.at >= clock.origin ? SENDING.exec(line.message) : null;
    return match ? [{ cid: match[1]!, offset: Number(match[2]), to: match[3]!, atS: (line.at - clock.origin) / 1000 }] : [];
  });
}
