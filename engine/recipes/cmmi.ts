// slapos.recipe.cmmi (and hexagonit.recipe.cmmi, the same options): configure, make, make install of
// a source archive or folder into the part's location, as every C component of SlapOS is built.
// The build happens in a temporary copy of the sources, never in the location or the source folder.
// With `shared = true` the engine chooses the location and may skip the build (engine/install/shared.ts).
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { extractArchive } from '../install/archive.js';
import { isTrue, registerRecipe, RecipeError, type PartContext, type PartOptions, type Recipe } from '../install/recipe.js';
import { LOCATION_PLACEHOLDER } from '../install/shared.js';
import { clearLeftover, localFile, shellQuote } from './download.js';

/** Python hooks of slapos.recipe.cmmi: they name Python code, which slapmesh cannot run. */
const PYTHON_HOOKS = ['pre-configure-hook', 'pre-make-hook', 'post-make-hook'];

const cmmi: Recipe = {
  version: '1',
  shareable: { sources },
  init(part) {
    const location = part.options.get('location');
    if (!location || location === LOCATION_PLACEHOLDER) part.options.set('location', join(part.buildout.partsDirectory, part.name));
    const realLocation = part.options.require('location');
    const prefix = part.options.get('prefix')?.trim();
    part.options.set('prefix', prefix ? prefix.replaceAll(LOCATION_PLACEHOLDER, realLocation) : realLocation);
    isTrue(part.name, 'shared', part.options.get('shared'));
  },
  install,
  update: async () => [],
};

async function install(part: PartContext): Promise<string[]> {
  const options = new CmmiOptions(part);
  const location = options.raw('location')!;
  const prefix = options.raw('prefix') || location;
  const url = options.raw('url')?.trim();
  const path = options.raw('path')?.trim();
  if (Boolean(url) === Boolean(path)) throw new RecipeError(`[${part.name}] needs either url or path (and not both)`);
  for (const hook of PYTHON_HOOKS) {
    if (options.raw(hook)) throw new RecipeError(`[${part.name}] ${hook} runs Python code, which slapmesh does not support: use the shell options (pre-configure, pre-make, pre-install, post-install)`);
  }
  await clearLeftover(part, location);
  part.created(location);
  const build = await mkdtemp(join(part.environment['TMPDIR'] ?? tmpdir(), 'cmmi-'));
  try {
    await mkdir(location, { recursive: true });
    const source = join(build, 'source');
    if (url) {
      const md5 = options.raw('md5sum')?.trim();
      const archive = await part.download(url, md5 ? { md5 } : undefined);
      part.log(`Extracting ${url}`);
      await extractArchive(archive, source, { stripTopLevel: true });
    } else {
      // Timestamps kept, or make would rerun autotools on files that only look newer.
      part.log(`Copying ${path}`);
      await cp(resolve(part.buildout.directory, path!), source, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    }

    const env = options.environment();
    const run = (step: string, command: string | undefined) => {
      if (!command?.trim()) return Promise.resolve();
      part.log(`[${step}] ${command.trim()}`);
      return part.run(command, { cwd: source, env });
    };

    const patchCommand = `${options.raw('patch-binary')?.trim() || 'patch'} ${words(options.raw('patch-options') ?? '-p0')}`;
    for (const patch of (options.raw('patches') ?? '').split(/\s+/).filter(Boolean)) {
      await run('patch', `${patchCommand} < ${shellQuote(await part.download(patch))}`);
    }

    const make = options.formatted('make-binary')?.trim() || 'make';
    const makeOptions = words(options.formatted('make-options') ?? '');
    let makeTargets = words(options.formatted('make-targets') ?? 'install');
    const configureOptions = words(options.formatted('configure-options') ?? '');
    let configure = options.formatted('configure-command')?.trim();
    if (!configure) {
      configure = `./configure${configureOptions.includes('--prefix') ? '' : ` --prefix=${shellQuote(prefix)}`}`;
    } else if (make === 'make' && makeTargets === 'install') {
      // A custom configure step is not told the prefix: make install is, as slapos.recipe.cmmi does.
      makeTargets += ` prefix=${shellQuote(prefix)}`;
    }

    await run('pre-configure', options.formatted('pre-configure'));
    await run('configure', `${configure} ${configureOptions}`);
    await run('pre-make', options.formatted('pre-make'));
    await run('make', `${make} ${makeOptions}`);
    await run('pre-install', options.formatted('pre-install'));
    await run('install', `${make} ${makeOptions} ${makeTargets}`);
    await run('post-install', options.formatted('post-install'));
    return [location];
  } catch (error) {
    await rm(location, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(build, { recursive: true, force: true });
  }
}

/** What a shared part is built from that no checksum pins: the source folder, unverified local archives and patches. */
function sources(options: PartOptions): string[] {
  const path = options.get('path')?.trim();
  const url = options.get('url')?.trim();
  const found = path ? [path] : url && !options.get('md5sum')?.trim() ? localFile(url) : [];
  for (const patch of (options.get('patches') ?? '').split(/\s+/).filter(Boolean)) found.push(...localFile(patch));
  return found;
}

/** The part's options as slapos.recipe.cmmi reads them: `@@LOCATION@@` replaced, `%(option)s` expanded. */
class CmmiOptions {
  private readonly location: string;

  constructor(private readonly part: PartContext) {
    this.location = part.options.require('location');
  }

  raw(option: string): string | undefined {
    return this.part.options.get(option)?.replaceAll(LOCATION_PLACEHOLDER, this.location);
  }

  /** Python's `value % options`: `%(option)s` is another option of the part, `%%` a `%`. */
  formatted(option: string): string | undefined {
    const value = this.raw(option);
    return value === undefined ? undefined : pyFormat(value, (key) => this.raw(key), `[${this.part.name}] ${option}`);
  }

  /**
   * The clean build environment plus the `environment` lines (`NAME=value`), whose `%(NAME)s` and
   * `${NAME}` are variables of the clean environment (`PATH=${x:location}/bin:%(PATH)s`).
   */
  environment(): Record<string, string> {
    const base = this.part.environment;
    const env: Record<string, string> = {};
    for (const line of (this.raw('environment') ?? '').split('\n')) {
      if (!line.trim()) continue;
      const eq = line.indexOf('=');
      const name = line.slice(0, eq).trim();
      if (eq < 0 || !name) throw new RecipeError(`[${this.part.name}] environment: expected NAME=value, got ${JSON.stringify(line.trim())}`);
      const what = `[${this.part.name}] environment ${name}`;
      env[name] = pyFormat(line.slice(eq + 1).trim(), (key) => base[key], what).replace(/\$\{(\w+)\}/g, (_, key: string) => {
        const value = base[key];
        if (value === undefined) throw new RecipeError(`${what}: \${${key}} is not a variable of the build environment`);
        return value;
      });
    }
    return env;
  }
}

/** `%(key)s` replaced by `lookup(key)`, `%%` by `%`; other `%` signs are kept. */
function pyFormat(value: string, lookup: (key: string) => string | undefined, what: string): string {
  return value.replace(/%(?:\(([^)]*)\)s|%)/g, (_, key: string | undefined) => {
    if (key === undefined) return '%';
    const found = lookup(key);
    if (found === undefined) throw new RecipeError(`${what}: %(${key})s names nothing`);
    return found;
  });
}

/** Lines and runs of blanks joined by one space, as the recipe joins its list options. */
function words(value: string): string {
  return value.split(/\s+/).filter(Boolean).join(' ');
}

registerRecipe('slapos.recipe.cmmi', cmmi);
registerRecipe('hexagonit.recipe.cmmi', cmmi);
