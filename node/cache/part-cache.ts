// The engine's ArtifactCache (design.md §2, §6) on the node's artifacts: a shared part is the artifact of
// the key `part/<signature>/<platform>`, used from trusted builders only, relocated from the builder's
// buildout directory to this one. Parts whose shared root lies outside the buildout directory are
// neither fetched nor published: one prefix could not relocate them.
import { relative, isAbsolute } from 'node:path';
import type { ArtifactCache, ArtifactRequest } from '../../engine/install/artifact-cache.js';
import type { Logger } from '../log.js';
import type { Artifacts } from './artifacts.js';
import { formatKey } from './entry.js';

export class PartCache implements ArtifactCache {
  constructor(private readonly artifacts: Artifacts, private readonly platform: string, private readonly log: Logger) {}

  async fetch(request: ArtifactRequest): Promise<boolean> {
    if (!relocatable(request)) return false;
    const key = this.keyOf(request);
    for (const entry of await this.artifacts.trusted(key, request.signal)) {
      try {
        const peer = await this.artifacts.install(entry, request.location, request.buildoutDirectory, request.signal);
        this.log(`shared part ${request.part} (${request.signature}) installed from ${entry.builder}'s artifact ${entry.cid}${peer ? ` fetched from ${peer}` : ''}`);
        this.artifacts.announce([entry.cid], [key]);
        return true;
      } catch (error) {
        request.signal.throwIfAborted();
        this.log.error(`artifact ${entry.cid} of ${entry.builder} for shared part ${request.part} not usable: ${(error as Error).message}`);
      }
    }
    return false;
  }

  async publish(request: ArtifactRequest): Promise<void> {
    if (!relocatable(request)) return;
    const key = this.keyOf(request);
    const entry = await this.artifacts.publish(key, request.location, request.buildoutDirectory);
    this.artifacts.announce([entry.cid], [key]);
  }

  private keyOf(request: ArtifactRequest): string {
    return formatKey({ kind: 'part', id: request.signature, platform: this.platform });
  }
}

function relocatable(request: ArtifactRequest): boolean {
  const path = relative(request.buildoutDirectory, request.sharedRoot);
  return path !== '' && !path.startsWith('..') && !isAbsolute(path);
}
