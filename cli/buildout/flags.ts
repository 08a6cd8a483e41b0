// Options shared by the buildout commands.
import { parseAssignment, UsageError, type Assignment } from '../../engine/config/configuration.js';
import { CliError } from '../io.js';

export interface ProfileFlags {
  config: string;
  offline?: boolean;
  newest?: boolean;
  json?: boolean;
  verbose?: boolean;
}

/** The command line's `section:option=value` arguments, with -o and -N as the assignments they stand for. */
export function assignments(args: readonly string[], flags: ProfileFlags): Assignment[] {
  const out: Assignment[] = [];
  if (flags.offline) out.push({ section: 'buildout', option: 'offline', value: 'true' });
  if (flags.newest === false) out.push({ section: 'buildout', option: 'newest', value: 'false' });
  for (const arg of args) {
    try {
      out.push(parseAssignment(arg));
    } catch (error) {
      if (error instanceof UsageError) throw new CliError(error.message);
      throw error;
    }
  }
  return out;
}
