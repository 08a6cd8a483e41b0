// Phase 3: lazy substitution of `${section:option}` in one shared configuration, as
// zc.buildout's Buildout/Options do (research/buildout.md §3): a section is remembered
// before it is initialised, options are substituted in sorted order, values memoised.
import {
  BadSubstitutionError, CircularReferenceError, MacroError, MissingOptionError, MissingSectionError, SubstitutionError,
} from './errors.js';
import { updateSection } from './merge.js';
import { pyCompare, pySplit, pyStrip } from './pytext.js';
import { RawValue, type RawSection } from './raw.js';

type Frame = readonly [section: string, option: string];

/** Far beyond real profiles (tens of levels), well within the JS stack. */
const MAX_DEPTH = 400;

/** Called when a section with a recipe finishes initialising (installs load the recipe here). */
export type RecipeHook = (section: SectionOptions, evaluation: Evaluation) => void;

/** One configuration being evaluated: its merged raw sections and the sections met so far. */
export class Evaluation {
  readonly sections = new Map<string, SectionOptions>();
  /** Sections with a recipe, in the order their initialisation finished (dependencies first). */
  readonly parts: string[] = [];
  /** Which sections each section's values referred to: what a part depends on. */
  readonly references = new Map<string, Set<string>>();

  constructor(readonly raw: Map<string, Map<string, string>>, private readonly onRecipe?: RecipeHook) {}

  section(name: string): SectionOptions {
    const known = this.sections.get(name);
    if (known) return known;
    const data = this.raw.get(name);
    if (!data) throw new MissingSectionError(name);
    const options = new SectionOptions(this, name, data);
    this.sections.set(name, options);
    this.nested(() => options.initialize());
    return options;
  }

  /** The `section:option` values being computed, outermost first: the chain errors report. */
  readonly trail: string[] = [];
  private depth = 0;

  /** Runs a step that may recurse through other sections, refusing absurd depths. */
  nested<T>(step: () => T): T {
    if (this.depth >= MAX_DEPTH) {
      throw new SubstitutionError(`references nested more than ${MAX_DEPTH} levels deep`);
    }
    this.depth++;
    try {
      return step();
    } finally {
      this.depth--;
    }
  }

  /** Runs the computation of one option, recorded in the trail. */
  within<T>(frame: string, step: () => T): T {
    this.trail.push(frame);
    try {
      return this.nested(step);
    } finally {
      this.trail.pop();
    }
  }

  noteReference(from: string, to: string): void {
    if (from === to) return;
    let targets = this.references.get(from);
    if (!targets) this.references.set(from, (targets = new Set()));
    targets.add(to);
  }

  /** The parts a section depends on: those it refers to, directly or through sections without a recipe. */
  partDependencies(name: string): string[] {
    const parts = new Set(this.parts);
    const found = new Set<string>();
    const seen = new Set<string>([name]);
    const walk = (from: string): void => {
      for (const to of this.references.get(from) ?? []) {
        if (seen.has(to)) continue;
        seen.add(to);
        if (parts.has(to)) found.add(to);
        else walk(to);
      }
    };
    walk(name);
    return [...found];
  }

  recipeReady(options: SectionOptions): void {
    this.onRecipe?.(options, this);
    this.parts.push(options.name);
  }
}

export class SectionOptions {
  private raw: Map<string, string>;
  /** Substituted values and values set by recipes: final. */
  private readonly data = new Map<string, string>();

  constructor(readonly evaluation: Evaluation, readonly name: string, raw: Map<string, string>) {
    this.raw = raw;
  }

  initialize(): void {
    if (this.raw.has('<')) this.raw = expandMacros(this.evaluation, this.name, this.raw, []);
    for (const key of [...this.raw.keys()].sort(pyCompare)) {
      const value = this.raw.get(key)!;
      if (value.includes('${') && !this.data.has(key)) {
        const seen: Frame[] = [[this.name, key]];
        this.data.set(key, this.substitute(value, seen));
      }
    }
    if (this.name === 'buildout') return;
    for (const dependency of pySplit(this.get('<part-dependencies>') ?? '')) {
      this.evaluation.noteReference(this.name, dependency);
      this.evaluation.section(dependency);
    }
    if (this.get('recipe')) this.evaluation.recipeReady(this);
  }

  /** The value of an option, substituted; undefined when the section has no such option. */
  get(option: string, seen?: Frame[]): string | undefined {
    const known = this.data.get(option);
    if (known !== undefined) return known;
    const value = this.raw.get(option);
    if (value === undefined) return undefined;
    if (!value.includes('${')) return value;
    const frames = seen ?? [];
    if (frames.some(([s, o]) => s === this.name && o === option)) {
      const error = new CircularReferenceError(
        `circular reference: ${[...this.evaluation.trail, `${this.name}:${option}`].join(' -> ')}`,
      );
      error.chain = [...this.evaluation.trail, `${this.name}:${option}`];
      throw error;
    }
    frames.push([this.name, option]);
    const result = this.substitute(value, frames);
    frames.pop();
    this.data.set(option, result);
    return result;
  }

  /** Like get, for options that must exist. */
  require(option: string): string {
    const value = this.get(option);
    if (value === undefined) throw new MissingOptionError(this.name, option);
    return value;
  }

  set(option: string, value: string): void {
    this.data.set(option, value);
  }

  has(option: string): boolean {
    return this.data.has(option) || this.raw.has(option);
  }

  keys(): string[] {
    const keys = [...this.raw.keys()];
    for (const key of this.data.keys()) if (!this.raw.has(key)) keys.push(key);
    return keys;
  }

  /**
   * `${section:option}` references replaced. `$${` is an escaped, literal `${` (SlapOS fork);
   * any other `$$` stays as written.
   */
  private substitute(template: string, seen: Frame[]): string {
    const frame = seen[seen.length - 1]!;
    return this.evaluation.within(`${frame[0]}:${frame[1]}`, () => {
      const pieces = template.split('$$');
      let out = '';
      pieces.forEach((piece, i) => {
        if (i > 0) out += piece.startsWith('{') ? '$' : '$$';
        out += piece.includes('${') ? this.substitutePiece(piece, seen) : piece;
      });
      return out;
    });
  }

  private substitutePiece(piece: string, seen: Frame[]): string {
    let out = '';
    let at = 0;
    for (;;) {
      const start = piece.indexOf('${', at);
      if (start < 0) break;
      const end = piece.indexOf('}', start);
      if (end < 0) break; // an unterminated `${` is kept as text
      out += piece.slice(at, start);
      const ref = piece.slice(start, end + 1);
      const [section, option] = parseReference(ref);
      const target = section || this.name;
      this.evaluation.noteReference(this.name, target);
      let value: string | undefined;
      try {
        value = this.evaluation.section(target).get(option, seen);
        if (value === undefined) {
          if (option !== '_buildout_section_name_') throw new MissingOptionError(target, option);
          value = this.name;
        }
      } catch (error) {
        if (error instanceof SubstitutionError && error.chain.length === 0) {
          error.chain = [...this.evaluation.trail, `${target}:${option}`];
        }
        throw error;
      }
      out += value;
      at = end + 1;
    }
    return out + piece.slice(at);
  }
}

const VALID_REFERENCE = /^\$\{[-a-zA-Z0-9 ._]*:[-a-zA-Z0-9 ._]+\}$/;
const SIMPLE_NAME = /^[-a-zA-Z0-9 ._]+$/;

function parseReference(ref: string): [string, string] {
  const parts = ref.slice(2, -1).split(':');
  if (!VALID_REFERENCE.test(ref)) {
    if (parts.length < 2) throw new BadSubstitutionError(`The substitution, ${ref},\ndoesn't contain a colon.`);
    if (parts.length > 2) throw new BadSubstitutionError(`The substitution, ${ref},\nhas too many colons.`);
    if (!SIMPLE_NAME.test(parts[0]!)) throw new BadSubstitutionError(`The section name in substitution, ${ref},\nhas invalid characters.`);
    throw new BadSubstitutionError(`The option name in substitution, ${ref},\nhas invalid characters.`);
  }
  return [parts[0]!, parts[1]!];
}

/**
 * `<= a b` macros: the named sections' raw values (recursively expanded), then this
 * section's own raw values laid over them with `+=`/`-=` applied.
 */
function expandMacros(evaluation: Evaluation, name: string, data: Map<string, string>, doing: string[]): Map<string, string> {
  if (name === 'buildout') return data;
  if (doing.includes(name)) throw new MacroError(`Infinite extending loop '${name}'`);
  const macros = data.get('<');
  if (macros === undefined) return data;
  doing.push(name);
  try {
    const merged = new Map<string, string>();
    for (const line of macros.split('\n')) {
      const macro = pyStrip(line);
      if (!macro) continue;
      const raw = evaluation.raw.get(macro);
      if (!raw) throw new MacroError(`No section named '${macro}'`);
      const expanded = evaluation.nested(() => expandMacros(evaluation, macro, raw, doing));
      for (const [k, v] of expanded) merged.set(k, v);
    }
    const into: RawSection = new Map([...merged].map(([k, v]) => [k, RawValue.set(v, 'IMPLICIT_VALUE')]));
    updateSection(into, new Map([...data].map(([k, v]) => [k, RawValue.set(v, 'IMPLICIT_VALUE')])));
    const result = new Map([...into].map(([k, v]) => [k, v.value]));
    result.delete('<');
    return result;
  } finally {
    doing.pop();
  }
}
