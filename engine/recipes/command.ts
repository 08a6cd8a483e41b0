// plone.recipe.command: a shell command run when the part is installed (`command`) and when it is
// updated (`update-command`), in the buildout directory and the clean build environment.
import { existsSync } from 'node:fs';
import { registerRecipe, RecipeError, type PartContext, type Recipe } from '../install/recipe.js';
import { partPath } from './template.js';

const TRUE_VALUES = ['yes', 'on', 'true', '1'];

async function runOption(part: PartContext, option: 'command' | 'update-command'): Promise<void> {
  const command = part.options.get(option);
  if (!command?.trim()) return;
  try {
    await part.run(command, { cwd: part.buildout.directory });
  } catch (error) {
    const stop = TRUE_VALUES.includes((part.options.get('stop-on-error') ?? 'no').trim().toLowerCase());
    if (stop || part.signal.aborted || !(error instanceof RecipeError)) throw error;
    // plone.recipe.command's default: a failing command is reported and the part still succeeds.
    part.log(`${error.message.split('\n')[0]} (ignored: stop-on-error is off)`);
  }
}

const command: Recipe = {
  async install(part) {
    await runOption(part, 'command');
    // `location` lists the paths the command manages: removed with the part (those it made).
    return (part.options.get('location') ?? '').split(/\s+/).filter(Boolean).map((p) => partPath(part, p)).filter((p) => existsSync(p));
  },
  async update(part) {
    await runOption(part, 'update-command');
  },
};

registerRecipe('plone.recipe.command', command);
