// The recipe API: what a recipe sees of its part and of the buildout, and what it must
// provide. Built-in recipes live in engine/recipes/; docs/recipes.md is the guide for authors.

/** A section's options: substituted on read; `set` values are final (and saved with the part). */
export interface PartOptions {
  get(option: string): string | undefined;
  /** Like get, but a missing option is an error naming the section and option. */
  require(option: string): string;
  set(option: string, value: string): void;
  has(option: string): boolean;
  keys(): string[];
}

/** The [buildout] settings recipes depend on, already substituted and absolute. */
export interface BuildoutSettings {
  readonly directory: string;
  readonly partsDirectory: string;
  readonly binDirectory: string;
  readonly offline: boolean;
  /** Refuse any download that has no checksum. */
  readonly frozen: boolean;
  /** Folder of downloaded files, by URL; undefined: downloads go to a temporary folder. */
  readonly downloadCache?: string;
  /** fnmatch patterns of allowed `host[:port]`s (`*` allows all). */
  readonly allowHosts: readonly string[];
}

export type PartLog = (line: string) => void;

/** What a recipe's `init` sees, while the configuration is evaluated. */
export interface RecipeInit {
  /** The section name. */
  readonly name: string;
  readonly options: PartOptions;
  readonly buildout: BuildoutSettings;
  /** Another section's options (it is evaluated, and its recipe initialised, if needed). */
  section(name: string): PartOptions;
}

/** An expected checksum: any of them that is given is verified. */
export interface Checksum {
  readonly md5?: string;
  readonly sha256?: string;
  readonly sha512?: string;
}

export interface RunOptions {
  readonly cwd?: string;
  /** Added to (and overriding) the clean build environment. */
  readonly env?: Readonly<Record<string, string>>;
}

/** What a recipe's install, update and uninstall see. */
export interface PartContext extends RecipeInit {
  readonly signal: AbortSignal;
  /** One line to the part's log (and to the progress display). */
  readonly log: PartLog;
  /**
   * A local copy of a URL, `file:` URL or path, verified against `checksum` (a mismatch names the URL
   * and both hashes). Cached in the download cache; refused offline, for hosts outside allow-hosts, and
   * when frozen without a checksum.
   */
  download(url: string, checksum?: Checksum): Promise<string>;
  /** Registers paths before creating them: they are deleted if the install fails, and recorded if it succeeds. */
  created(...paths: string[]): void;
  /** Runs a shell command in the clean build environment; its output goes to the part's log. */
  run(command: string, options?: RunOptions): Promise<void>;
  /** The clean build environment: build tools on PATH, no user site directories. */
  readonly environment: Readonly<Record<string, string>>;
}

export interface Recipe {
  /** Changing it reinstalls every part made with the recipe (it takes part in their signature). */
  readonly version?: string;
  /**
   * Sets default and computed options while the configuration is evaluated, so other sections can
   * use them (e.g. `location`, a chosen port). It must not write anything.
   */
  init?(part: RecipeInit): void;
  /** Creates the part and returns every path it created: they are deleted on uninstall or failure. */
  install(part: PartContext): Promise<string[]>;
  /** Called instead of install when the part is unchanged; may return more created paths. Default: nothing. */
  update?(part: PartContext): Promise<string[] | void>;
  /** Called before a part's paths are deleted, with the options it was installed with. */
  uninstall?(part: { readonly name: string; readonly options: Readonly<Record<string, string>>; readonly log: PartLog }): Promise<void>;
  /**
   * Given by recipes whose parts may say `shared = true` (engine/install/shared.ts): such a part is
   * installed once per content signature under the shared root, reused by every buildout, and fetched
   * from and published to the node's artifact cache. Other recipes ignore `shared`.
   */
  readonly shareable?: Shareable;
}

/** How a recipe takes part in shared parts. */
export interface Shareable {
  /**
   * Local files or folders the part is built from whose content no option pins (a source folder, a
   * local file without checksum): their content goes into the part's signature. Relative paths are
   * relative to the buildout directory.
   */
  sources?(options: PartOptions): string[];
}

/** An expected failure of a part (a bad option, a failed command, a bad download): shown without a stack. */
export class RecipeError extends Error {
  override name = 'RecipeError';
}

/** A buildout boolean option: true/false (yes/no, on/off, 1/0); absent or empty is `undefined`. */
export function flag(section: string, option: string, value: string | undefined): boolean | undefined {
  const v = value?.trim().toLowerCase();
  if (!v) return undefined;
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw new RecipeError(`[${section}] ${option} must be true or false, got ${JSON.stringify(value)}`);
}

export function isTrue(section: string, option: string, value: string | undefined): boolean {
  return flag(section, option, value) ?? false;
}

const recipes = new Map<string, Recipe>();

/** `egg:entry` as written in `recipe =`, the entry being `default` when omitted. */
export function recipeKey(spec: string): string {
  const [egg, entry, ...rest] = spec.trim().split(':');
  if (rest.length || !egg) throw new RecipeError(`invalid recipe name ${JSON.stringify(spec)}`);
  return `${egg.trim()}:${(entry ?? 'default').trim() || 'default'}`;
}

/** Registers a recipe under its `egg[:entry]` name. */
export function registerRecipe(spec: string, recipe: Recipe): void {
  recipes.set(recipeKey(spec), recipe);
}

export function findRecipe(spec: string): Recipe | undefined {
  return recipes.get(recipeKey(spec));
}
