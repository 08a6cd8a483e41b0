/** A place in a configuration file; line and column are 1-based. */
export interface Location {
  readonly file: string;
  readonly line: number;
  readonly column?: number;
}

export interface Diagnostic extends Location {
  readonly message: string;
}

/** `FILE:LINE[:COL]: message`, the form editors and people can jump to. */
export function formatDiagnostic(d: Diagnostic): string {
  const column = d.column === undefined ? '' : `:${d.column}`;
  return `${d.file}:${d.line}${column}: ${d.message}`;
}

/**
 * A configuration that cannot be used at all (bad syntax, missing or cyclic extends,
 * bad condition, unusable [buildout] section). Carries every located problem found.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.diagnostics = diagnostics;
  }
}

/** Base of the errors met while evaluating a section (zc.buildout's UserError family). */
export class SubstitutionError extends Error {
  override name = 'SubstitutionError';
  /** The chain of `section:option` being evaluated when it failed, outermost first. */
  chain: string[] = [];
}

export class MissingSectionError extends SubstitutionError {
  override name = 'MissingSectionError';
  constructor(readonly section: string) {
    super(`The referenced section, '${section}', was not defined.`);
  }
}

export class MissingOptionError extends SubstitutionError {
  override name = 'MissingOptionError';
  constructor(readonly section: string, readonly option: string) {
    super(`Referenced option does not exist: ${section} ${option}`);
  }
}

export class CircularReferenceError extends SubstitutionError {
  override name = 'CircularReferenceError';
}

export class BadSubstitutionError extends SubstitutionError {
  override name = 'BadSubstitutionError';
}

export class MacroError extends SubstitutionError {
  override name = 'MacroError';
}
