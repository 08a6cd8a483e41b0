// What the engine sees of the node's build cache (design.md §2, §6): it fetches a shared part by its
// content signature before building it, and publishes what it built. Nothing else of the network.
// engine/install/shared.ts decides when; docs/recipes.md ("Shared parts") is the guide.

/** One shared part, as the engine asks the cache about it. */
export interface ArtifactRequest {
  /** The part's content signature (64 hex digits): the same part gives the same one in any buildout directory. */
  readonly signature: string;
  /** The section name, for logs and indexes (the signature alone is the key). */
  readonly part: string;
  /** Where the part lives here: `<sharedRoot>/<part>/<signature>`. */
  readonly location: string;
  /**
   * The paths a build may have written into the part's files, as they are here. An artifact built
   * elsewhere holds the builder's values: a fetch rewrites each of them into this side's, longest first.
   */
  readonly sharedRoot: string;
  readonly buildoutDirectory: string;
  readonly signal: AbortSignal;
}

export interface ArtifactCache {
  /**
   * Puts the artifact cached for `signature` at `location` (which does not exist yet), relocated from the
   * builder's paths to these; false when none can be had. A rejection is logged and the part is built.
   */
  fetch(request: ArtifactRequest): Promise<boolean>;
  /** Makes what was built at `location` available to others under `signature`. A rejection is logged, never fatal. */
  publish(request: ArtifactRequest): Promise<void>;
}
