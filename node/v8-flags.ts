// How V8 decides to collect garbage, as newer V8 does. Before V8 14.8, every byte allocated in ArrayBuffers
// since the last mark-compact counts towards starting the next one, whether the buffers are dead or alive.
// A node moving bytes over libp2p gets fresh buffers for every socket read and every Noise message, so it
// ran a full mark of its whole heap every 40–65 MB moved, for buffers already dead (docs/benchmarks.md).
// With --external-memory-accounted-in-global-limit, V8 counts what buffers hold, within the heap's global
// limit. V8 14.8 made that its only behaviour and removed the flag; Node 24 runs V8 13.6, so a node asks for
// it. Node takes the flag only from its command line or from v8.setFlagsFromString, and prints an error
// for a flag its V8 does not know: hence the version check, and a call before anything else is loaded.
import { setFlagsFromString } from 'node:v8';

const FLAG = '--external-memory-accounted-in-global-limit';

/** Whether V8 `version` knows the flag and does not already behave so: 13.x (Node 24) up to 14.7. */
export function needsExternalMemoryFlag(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major === 13 || (major === 14 && minor < 8);
}

/** Sets the flag where this process's V8 needs it; returns whether it did. */
export function countExternalMemoryAsHeld(version = process.versions.v8): boolean {
  if (!needsExternalMemoryFlag(version)) return false;
  setFlagsFromString(FLAG);
  return true;
}
