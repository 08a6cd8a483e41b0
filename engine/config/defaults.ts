// zc.buildout's built-in [buildout] options (the SlapOS fork, based on 3.0.1: eggs live
// directly in eggs/, without 5.x's version subfolder).
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export const BUILDOUT_DEFAULTS: Readonly<Record<string, string>> = {
  'allow-hosts': '*',
  'allow-picked-versions': 'true',
  'allow-unknown-extras': 'false',
  'bin-directory': 'bin',
  'develop-eggs-directory': 'develop-eggs',
  'eggs-directory': 'eggs',
  executable: pythonExecutable(),
  'find-links': '',
  'install-from-cache': 'false',
  installed: '.installed.cfg',
  'log-format': '',
  'log-level': 'INFO',
  newest: 'true',
  offline: 'false',
  'parts-directory': 'parts',
  'prefer-final': 'true',
  python: 'buildout',
  'show-picked-versions': 'false',
  'socket-timeout': '',
  'update-versions-file': '',
  'use-dependency-links': 'true',
};

/** The pin zc.buildout adds for its egg recipe when [versions] has none. */
export const DEFAULT_VERSION_PINS: Readonly<Record<string, string>> = { 'zc.recipe.egg': '>=2.0.6' };

/** `${buildout:executable}` is Python's own path in zc.buildout; the nearest python3 here. */
function pythonExecutable(): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'python3');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return 'python3';
}
