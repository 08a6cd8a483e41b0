// The rules the instance scenarios (placement, churn) are judged by, as functions of what the run recorded:
// pure, so that a test can hand them a record that breaks one.
import { assertion } from './assertions.js';

/** One request the scenario made, as it went. Times in ms on the mesh's clock. */
export interface RequestRecord {
  reference: string;
  /** The requesting node's name and PeerId (the instance's owner). */
  requester: string;
  owner: string;
  firedMs: number;
  /** When `request` answered: placed and confirmed. */
  acceptedMs?: number;
  /** Why the node refused it (no peer accepted it, …). */
  refused?: string;
  /** The call itself failed (no answer in time, the node gone): not an answer from the mesh. */
  error?: string;
  /** From the owner's record, last polled. */
  host?: string;
  epoch?: number;
  status?: string;
  message?: string;
  /** When the owner's record first said ready. */
  readyMs?: number;
}

/** One hosted instance, as `instance list --hosted` shows it. */
export interface HostedEntry {
  owner: string;
  reference: string;
  status: string;
  epoch: number;
}

/** A node's hosted instances at one moment. */
export interface HostedListing {
  node: string;
  peerId: string;
  instances: HostedEntry[];
}

/** A node killed with SIGKILL: what it hosted just before, and when it came back. */
export interface KillRecord {
  node: string;
  peerId: string;
  killedMs: number;
  restartedMs?: number;
  hosted: HostedEntry[];
}

export interface InstancesRecord {
  /** Partitions per node (`--partitions`). */
  partitions: number;
  requests: RequestRecord[];
  /** Per node, the most instances it listed as hosted in any one poll during the run, and when. */
  peaks: { node: string; count: number; atMs: number }[];
  /** Every node's hosted instances at the end. */
  finalHosted: HostedListing[];
  /** Nodes killed and restarted (churn); empty otherwise. */
  kills: KillRecord[];
}

const keyOf = (owner: string, reference: string) => `${owner}/${reference}`;

function nameOf(record: InstancesRecord, peerId: string | undefined): string {
  if (peerId === undefined) return 'no host';
  return record.finalHosted.find((listing) => listing.peerId === peerId)?.node ?? peerId;
}

/** Where each instance is listed at the end: owner/reference → the nodes listing it, with their entries. */
function listedAt(record: InstancesRecord): Map<string, { listing: HostedListing; entry: HostedEntry }[]> {
  const where = new Map<string, { listing: HostedListing; entry: HostedEntry }[]>();
  for (const listing of record.finalHosted) {
    for (const entry of listing.instances) {
      const key = keyOf(entry.owner, entry.reference);
      where.set(key, [...(where.get(key) ?? []), { listing, entry }]);
    }
  }
  return where;
}

/** A request is answered when it was refused with a reason, or placed and its instance became ready (or failed, saying why). */
export function unansweredRequests(record: InstancesRecord): string[] {
  return record.requests.flatMap((request) => {
    if (request.acceptedMs === undefined) {
      return request.refused?.trim() ? [] : [`${request.reference} (from ${request.requester}) was neither placed nor refused with a reason${request.error ? `: ${request.error}` : ''}`];
    }
    if (request.status === 'ready') return [];
    if ((request.status === 'failed' || request.status === 'error') && request.message) return [];
    return [`${request.reference} was placed on ${nameOf(record, request.host)} but is ${request.status ?? 'unknown'} at the end${request.message ? `: ${request.message}` : ''}`];
  });
}

/** A reference is live on at most one node at the end, and only on the one its owner placed it on. */
export function referencesPlacedTwice(record: InstancesRecord): string[] {
  const owners = new Map(record.requests.map((request) => [keyOf(request.owner, request.reference), request]));
  const violations: string[] = [];
  for (const [key, places] of listedAt(record)) {
    if (places.length > 1) violations.push(`${key} is listed by ${places.map(({ listing, entry }) => `${listing.node} (epoch ${entry.epoch})`).join(' and ')}`);
    const request = owners.get(key);
    if (!request) continue;
    for (const { listing, entry } of places) {
      if (request.host !== listing.peerId) {
        violations.push(`${request.reference} is live on ${listing.node} (epoch ${entry.epoch}) though its owner has it on ${nameOf(record, request.host)}${request.epoch !== undefined ? ` (epoch ${request.epoch})` : ''}`);
      }
    }
  }
  return violations;
}

/** No node ever listed more hosted instances than it has partitions. */
export function capacityExceeded(record: InstancesRecord): string[] {
  return record.peaks.filter((peak) => peak.count > record.partitions)
    .map((peak) => `${peak.node} hosted ${peak.count} instances at ${(peak.atMs / 1000).toFixed(1)} s, with ${record.partitions} partitions`);
}

/**
 * Every instance a killed node hosted (and whose request was placed) is back: listed again by that node and
 * ready, where its owner still has it; or moved by its owner — ready on its new host — and no longer on the
 * restarted node.
 */
export function lostOnRestart(record: InstancesRecord): string[] {
  const requests = new Map(record.requests.map((request) => [keyOf(request.owner, request.reference), request]));
  const where = listedAt(record);
  const violations: string[] = [];
  for (const kill of record.kills) {
    if (kill.restartedMs === undefined) {
      violations.push(`${kill.node} was killed at ${(kill.killedMs / 1000).toFixed(1)} s and never started again`);
      continue;
    }
    for (const entry of kill.hosted) {
      const key = keyOf(entry.owner, entry.reference);
      const request = requests.get(key);
      // Only what its owner was told was placed can be lost: a copy whose confirmation never reached the owner is not its.
      if (!request || request.acceptedMs === undefined) continue;
      const places = where.get(key) ?? [];
      const onVictim = places.find(({ listing }) => listing.peerId === kill.peerId);
      if (request.host === undefined) {
        violations.push(`${entry.reference} (on ${kill.node} before the kill) has no host any more: ${request.status ?? 'unknown'}${request.message ? `: ${request.message}` : ''}`);
      } else if (request.host === kill.peerId) {
        if (!onVictim) violations.push(`${entry.reference} is not listed by ${kill.node} after its restart, though its owner still has it there`);
        else if (onVictim.entry.status !== 'ready') violations.push(`${entry.reference} is back on ${kill.node} but ${onVictim.entry.status}`);
      } else {
        const onHost = places.find(({ listing }) => listing.peerId === request.host);
        if (onVictim) violations.push(`${entry.reference} moved to ${nameOf(record, request.host)} but its old copy is still on ${kill.node}`);
        if (!onHost) violations.push(`${entry.reference} moved to ${nameOf(record, request.host)}, which does not list it`);
        else if (onHost.entry.status !== 'ready') violations.push(`${entry.reference} moved to ${nameOf(record, request.host)} but is ${onHost.entry.status} there`);
      }
    }
  }
  return violations;
}

export const EVERY_REQUEST_ANSWERED = assertion<InstancesRecord>('every-request-answered',
  'every request was placed and its instance became ready (or failed saying why), or was refused with a reason', unansweredRequests);
export const NO_REFERENCE_PLACED_TWICE = assertion<InstancesRecord>('no-reference-placed-twice',
  'at the end, each reference is live on one node only: the host its owner placed it on', referencesPlacedTwice);
export const CAPACITY_RESPECTED = assertion<InstancesRecord>('capacity-respected',
  'no node ever hosted more instances than its partitions', capacityExceeded);
export const NOTHING_LOST_ON_RESTART = assertion<InstancesRecord>('nothing-lost-on-restart',
  'every instance a killed node hosted is back: ready on it again, or moved by its owner with the old copy destroyed', lostOnRestart);
