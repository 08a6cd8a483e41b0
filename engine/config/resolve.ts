// `buildout resolve`: every section of a configuration with every option substituted,
// without loading any recipe (design.md §3, "Resolve contract").
import { loadConfiguration, describeSubstitutionError, startEvaluation, type ConfigurationRequest } from './configuration.js';
import { SubstitutionError } from './errors.js';
import type { Evaluation, SectionOptions } from './options.js';
import { pyCompare, pyJoin } from './pytext.js';

export interface ResolveResult {
  sections: Record<string, Record<string, string>>;
  errors: Record<string, string>;
}

/** Recipes are not loaded; a part only learns where it would be installed. */
export function addLocation(section: SectionOptions, evaluation: Evaluation): void {
  if (section.has('location')) return;
  const parts = evaluation.section('buildout').require('parts-directory');
  section.set('location', pyJoin(parts, section.name));
}

function isHidden(option: string): boolean {
  return option.startsWith('__buildout') || option === '_buildout_section_name_';
}

/** Evaluates every section in sorted order; a section that fails is reported under `errors`. */
export function resolveSections(evaluation: Evaluation): ResolveResult {
  const result: ResolveResult = { sections: {}, errors: {} };
  for (const name of [...evaluation.raw.keys()].sort(pyCompare)) {
    try {
      const options = evaluation.section(name);
      const values: Record<string, string> = {};
      for (const key of options.keys().sort(pyCompare)) {
        if (!isHidden(key)) values[key] = options.get(key) ?? '';
      }
      result.sections[name] = values;
    } catch (error) {
      if (!(error instanceof SubstitutionError)) throw error;
      result.errors[name] = describeSubstitutionError(error);
    }
  }
  return result;
}

/** Resolves a profile; throws ConfigError when it cannot be used at all. */
export async function resolveConfiguration(request: ConfigurationRequest): Promise<ResolveResult> {
  const configuration = await loadConfiguration(request);
  return resolveSections(startEvaluation(configuration, addLocation));
}
