// slapos.recipe.template: a file made from a template. The default entry substitutes buildout
// references in it; `:jinja2` renders it with Jinja2 — here nunjucks, taught the Python and Jinja2
// behaviours SlapOS templates rely on (docs/recipes.md lists what still differs).
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import { splitChecksumFragment } from '../install/download.js';
import { jinjaEnvironment, PYTHON_MODULES } from './jinja2.js';
import { registerRecipe, RecipeError, type PartContext, type PartOptions, type Recipe, type RecipeInit } from '../install/recipe.js';

// ---------------------------------------------------------------------------------------------
// Helpers shared with the other file-writing recipes

/** An octal mode option (`0644`, `644`, `0o644`) as Python's `int(value, 8)` reads it; undefined when not set. */
export function octalMode(part: RecipeInit, option = 'mode'): number | undefined {
  const value = part.options.get(option)?.trim();
  if (!value) return undefined;
  const digits = value.replace(/^0o/i, '');
  if (!/^[0-7]+$/.test(digits) || parseInt(digits, 8) > 0o7777) {
    throw new RecipeError(`[${part.name}] ${option} = ${value} is not an octal file mode`);
  }
  return parseInt(digits, 8);
}

/** A path option, relative paths being relative to the buildout directory (where zc.buildout runs recipes). */
export function partPath(part: RecipeInit, value: string): string {
  return resolve(part.buildout.directory, value.trim());
}

/**
 * Writes `content` unless the file already holds it, atomically (a temporary file renamed over it),
 * creating its folder. The mode is `mode` when given (not narrowed by the umask), else 0666 less the umask.
 */
export function writeFileIfChanged(path: string, content: string, mode?: number): void {
  if (existsSync(path) && statSync(path).isFile() && readFileSync(path, 'utf8') === content) {
    if (mode !== undefined && (statSync(path).mode & 0o7777) !== mode) chmodSync(path, mode);
    return;
  }
  mkdirSync(dirname(path), { recursive: true });
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(temporary, content, { mode: mode ?? 0o666 });
    if (mode !== undefined) chmodSync(temporary, mode);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw new RecipeError(`cannot write ${path}: ${(error as Error).message}`);
  }
}

/** The output path: `output`, or the legacy option names given. */
function outputOf(part: RecipeInit, ...legacy: string[]): string {
  for (const option of ['output', ...legacy]) {
    const value = part.options.get(option);
    if (value?.trim()) return partPath(part, value);
  }
  throw new RecipeError(`[${part.name}] needs an output option (the path of the file to write)`);
}

/**
 * A template named by URL read now, when it is local (a path or `file:` URL), checked against its
 * md5sum; undefined for a remote one, which only install can download.
 */
function readLocalTemplate(part: RecipeInit, url: string, md5sum: string | undefined): string | undefined {
  const split = splitChecksumFragment(url.trim());
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(split.url)?.[1]?.toLowerCase();
  if (scheme && scheme !== 'file') return undefined;
  const path = scheme ? fileURLToPath(split.url) : partPath(part, split.url);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new RecipeError(`[${part.name}] cannot read the template ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const expected = (md5sum?.trim() || split.md5)?.toLowerCase();
  const got = createHash('md5').update(bytes).digest('hex');
  if (expected && got !== expected) {
    throw new RecipeError(`[${part.name}] MD5 checksum mismatch for local resource at '${url.trim()}': expected ${expected}, got ${got}`);
  }
  return bytes.toString('utf8');
}

/** A template's text at install: local ones are read, remote ones downloaded (verified against md5sum). */
async function fetchTemplate(part: PartContext, url: string, md5sum: string | undefined): Promise<string> {
  const local = readLocalTemplate(part, url, md5sum);
  if (local !== undefined) return local;
  const path = await part.download(url.trim(), md5sum?.trim() ? { md5: md5sum.trim() } : undefined);
  return readFileSync(path, 'utf8');
}

// ---------------------------------------------------------------------------------------------
// slapos.recipe.template (default): buildout substitution

/**
 * zc.buildout's substitution of a text, as SlapOS's fork does: `${section:option}` and `${:option}`
 * are replaced by their values, `$${` gives a literal `${`, any other `$$` stays.
 */
export function substituteBuildout(part: RecipeInit, text: string): string {
  return text
    .split('$$')
    .map((piece, i) => (i === 0 ? '' : piece.startsWith('{') ? '$' : '$$') + piece.replace(/\$\{[^}]*\}/g, (ref) => reference(part, ref)))
    .join('');
}

function reference(part: RecipeInit, ref: string): string {
  const body = ref.slice(2, -1);
  if (!/^[-a-zA-Z0-9 ._]*:[-a-zA-Z0-9 ._]+$/.test(body)) {
    throw new RecipeError(`[${part.name}] the template holds ${ref}, which is not a \${section:option} reference (write $\${ for a literal \${)`);
  }
  const [section, option] = body.split(':') as [string, string];
  const target = section || part.name;
  if (option === '_buildout_section_name_') return part.name; // zc.buildout gives the referencing section's name
  let value: string | undefined;
  try {
    value = part.section(target).get(option);
  } catch (error) {
    throw new RecipeError(`[${part.name}] the template refers to ${ref}: ${(error as Error).message}`);
  }
  if (value === undefined) throw new RecipeError(`[${part.name}] the template refers to ${ref}, but [${target}] has no option ${option}`);
  return value;
}

/**
 * Rendered while the configuration is evaluated, as slapos.recipe.template does, so that what the
 * template refers to is evaluated (and installed) first; install writes it.
 */
const renderedAtInit = new WeakMap<PartOptions, string>();

const template: Recipe = {
  init(part) {
    outputOf(part);
    const inline = part.options.get('inline');
    if (inline !== undefined) {
      // An option's value is substituted once, by buildout, like any other option.
      renderedAtInit.set(part.options, inline);
      return;
    }
    const url = part.options.get('url');
    if (url === undefined) throw new RecipeError(`[${part.name}] needs url or inline (the template)`);
    const text = readLocalTemplate(part, url, part.options.get('md5sum'));
    if (text !== undefined) renderedAtInit.set(part.options, substituteBuildout(part, text));
  },

  async install(part) {
    const output = outputOf(part);
    writeFileIfChanged(output, await renderDefault(part), octalMode(part));
    return [output];
  },

  async update(part) {
    // slapos.recipe.template: a template pinned by md5sum is not rendered again; others are, in
    // case what they refer to changed (the file is only rewritten when its content did).
    if (part.options.get('md5sum')?.trim()) return;
    writeFileIfChanged(outputOf(part), await renderDefault(part), octalMode(part));
  },
};

async function renderDefault(part: PartContext): Promise<string> {
  const known = renderedAtInit.get(part.options);
  if (known !== undefined) return known;
  // A remote template: its references are only resolved now.
  return substituteBuildout(part, await fetchTemplate(part, part.options.require('url'), part.options.get('md5sum')));
}

// ---------------------------------------------------------------------------------------------
// slapos.recipe.template:jinja2

type ContextLine = readonly [kind: string, name: string, expression: string];

function contextLines(part: RecipeInit, option: string): ContextLine[] {
  const lines: ContextLine[] = [];
  for (const raw of (part.options.get(option) ?? '').split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const match = /^(\S+)\s+(\S+)\s+(\S.*)$/.exec(line);
    if (!match) throw new RecipeError(`[${part.name}] ${option}: "${line}" is not "<type> <name> <expression>"`);
    lines.push([match[1]!, match[2]!, match[3]!.trim()]);
  }
  return lines;
}

/** `section:option` (an empty section is the part's own) as the context's `key` and import-list's `file` read it. */
function keyValue(part: RecipeInit, expression: string): string {
  const colon = expression.indexOf(':');
  if (colon < 0) throw new RecipeError(`[${part.name}] "${expression}" is not section:option`);
  const section = expression.slice(0, colon) || part.name;
  const option = expression.slice(colon + 1);
  let value: string | undefined;
  try {
    value = part.section(section).get(option);
  } catch (error) {
    throw new RecipeError(`[${part.name}] context ${expression}: ${(error as Error).message}`);
  }
  if (value === undefined) throw new RecipeError(`[${part.name}] context ${expression}: [${section}] has no option ${option}`);
  return value;
}

/**
 * SlapOS's buildout lets recipes set options to Python objects, and slapconfiguration does (its
 * `configuration` is a dict, `ipv4`/`ipv6` are sets). Options are text here, so what slapmesh's
 * slapconfiguration writes as JSON or lines is given to templates as the object SlapOS gives.
 */
function optionObject(part: RecipeInit, section: string, option: string, value: string): unknown {
  const recipe = part.section(section).get('recipe') ?? '';
  if (!/^slapos\.cookbook:slapconfiguration/.test(recipe.trim())) return value;
  if (option === 'ipv4' || option === 'ipv6') return value.split('\n').filter(Boolean);
  if (['configuration', 'storage-dict', 'slave-instance-list'].includes(option)) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

function contextValue(part: RecipeInit, [kind, name, expression]: ContextLine): unknown {
  const json = (text: string) => {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new RecipeError(`[${part.name}] context ${kind} ${name}: not JSON: ${(error as Error).message}`);
    }
  };
  switch (kind) {
    case 'raw':
      return expression;
    case 'key': {
      const section = expression.slice(0, expression.indexOf(':')) || part.name;
      return optionObject(part, section, expression.slice(expression.indexOf(':') + 1), keyValue(part, expression));
    }
    case 'json':
      return json(expression);
    case 'jsonkey':
      return json(keyValue(part, expression));
    case 'section': {
      const options = part.section(expression);
      return Object.fromEntries(options.keys().map((key) => [key, optionObject(part, expression, key, options.get(key) ?? '')]));
    }
    case 'import': {
      const module = PYTHON_MODULES[expression];
      if (!module) throw new RecipeError(`[${part.name}] context import ${name} ${expression}: slapmesh offers the Python modules ${Object.keys(PYTHON_MODULES).join(', ')} only`);
      return module;
    }
    default:
      throw new RecipeError(`[${part.name}] context: unknown type "${kind}" (raw, key, json, jsonkey, section, import)`);
  }
}

function jinjaContext(part: RecipeInit): Record<string, unknown> {
  const context: Record<string, unknown> = {};
  for (const line of contextLines(part, 'context')) {
    if (line[1] in context) throw new RecipeError(`[${part.name}] context: ${line[1]} is defined twice`);
    context[line[1]] = contextValue(part, line);
  }
  return context;
}

/** The templates `{% import %}` can name: import-list's `file NAME section:option` and `rawfile NAME PATH`. */
function importedTemplates(part: RecipeInit): Map<string, string> {
  const paths = new Map<string, string>();
  for (const [kind, name, expression] of contextLines(part, 'import-list')) {
    if (kind === 'file') paths.set(name, partPath(part, keyValue(part, expression)));
    else if (kind === 'rawfile') paths.set(name, partPath(part, expression));
    else throw new RecipeError(`[${part.name}] import-list: unknown type "${kind}" (file, rawfile)`);
  }
  return paths;
}

const EXTENSIONS: Readonly<Record<string, string>> = { 'jinja2.ext.do': 'do' };

function jinjaSource(part: RecipeInit): { text: string } | { url: string } {
  const template = part.options.get('template');
  if (template !== undefined) {
    // The legacy option: a URL, or the template itself after "inline:" and an optional newline.
    return template.startsWith('inline:') ? { text: template.slice('inline:'.length).replace(/^\r?\n/, '') } : { url: template };
  }
  const inline = part.options.get('inline');
  if (inline !== undefined) return { text: inline };
  const url = part.options.get('url');
  if (url !== undefined) return { url };
  throw new RecipeError(`[${part.name}] needs url or inline (the template)`);
}

async function renderJinja(part: PartContext): Promise<string> {
  const source = jinjaSource(part);
  const text = 'text' in source ? source.text : await fetchTemplate(part, source.url, part.options.get('md5sum'));
  const imports = importedTemplates(part);
  const environment = jinjaEnvironment(
    (name) => {
      const path = imports.get(name);
      if (path === undefined) return null;
      try {
        return { src: nunjucksSource(readFileSync(path, 'utf8')), path, noCache: true };
      } catch (error) {
        throw new RecipeError(`[${part.name}] cannot read ${path} (imported as ${name}): ${(error as Error).message}`);
      }
    },
    (part.options.get('extensions') ?? '').split(/\s+/).filter(Boolean).map((name) => {
      const known = EXTENSIONS[name];
      if (!known) throw new RecipeError(`[${part.name}] extensions: ${name} is not available (slapmesh has ${Object.keys(EXTENSIONS).join(', ')})`);
      return known;
    }),
  );
  const name = 'url' in source ? source.url.trim() : 'the inline template';
  try {
    return new nunjucks.Template(nunjucksSource(text), environment, name).render(jinjaContext(part));
  } catch (error) {
    if (error instanceof RecipeError) throw error;
    throw new RecipeError(`[${part.name}] cannot render ${name}: ${(error as Error).message.replace(/^Template render error: /, '')}`);
  }
}

/**
 * A template's source as nunjucks can read it: without the final newline (Jinja2 drops it, as
 * keep_trailing_newline is off), with `{%- raw -%}` whitespace control done here (nunjucks does not
 * know it on raw tags), and `for (a, b) in` written `for a, b in`.
 */
function nunjucksSource(text: string): string {
  return text
    .replace(/\r?\n$/, '')
    .replace(/\{%(-?)(\s*(?:raw|endraw)\s*)-%\}\s*/g, '{%$1$2%}')
    .replace(/\s*\{%-(\s*(?:raw|endraw)\s*)%\}/g, '{%$1%}')
    .replace(/\{%(-?)(\s*)for\s+\(([^()]*)\)\s+in\b/g, '{%$1$2for $3 in');
}

const jinja2: Recipe = {
  init(part) {
    outputOf(part, 'rendered');
    jinjaSource(part);
    // Evaluates what the context refers to now, so those parts are installed first (as SlapOS does).
    for (const [kind, , expression] of [...contextLines(part, 'context'), ...contextLines(part, 'import-list')]) {
      if (kind === 'key' || kind === 'jsonkey' || kind === 'file') keyValue(part, expression);
      else if (kind === 'section') part.section(expression);
    }
  },

  async install(part) {
    const output = outputOf(part, 'rendered');
    const once = part.options.get('once')?.trim();
    // `once` names a file whose presence means "already rendered": the output is kept as it is
    // (it may have been edited), and is not removed with the part.
    if (once && existsSync(partPath(part, once))) return [];
    writeFileIfChanged(output, await renderJinja(part), octalMode(part));
    if (!once) return [output];
    if (!existsSync(partPath(part, once))) writeFileIfChanged(partPath(part, once), '');
    return [];
  },

  async update(part) {
    // Rendered again: what the template reads may have changed (the file is only rewritten if it did).
    await jinja2.install(part);
  },
};

registerRecipe('slapos.recipe.template', template);
registerRecipe('slapos.recipe.template:jinja2', jinja2);
