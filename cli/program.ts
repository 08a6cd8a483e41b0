// The command line's frame: the program, its global options, and how a run ends (exit status, one line
// on stderr for an expected failure). The commands are given by the caller, so that an entry point that
// needs only some of them (`slapmesh buildout`, which a node runs for every deployment) loads only those.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../engine/config/errors.js';
import { ControlError, NodeNotRunningError } from '../node/control.js';
import { CliError, EXIT_FAILED, type CliIo } from './io.js';

export interface CommandContext {
  readonly io: CliIo;
  readonly setExit: (code: number) => void;
}

export type Register = (program: Command, context: CommandContext) => void;

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Builds the program with `commands`; every action reports its exit status through `setExit`. */
export function buildProgram(io: CliIo, commands: readonly Register[]): { program: Command; exitCode: () => number } {
  let exitCode = 0;
  const program = new Command('slapmesh')
    .description('a decentralized SlapOS: build software releases, share them, host instances, without a master')
    .version(version())
    .option('--data-dir <dir>', 'node data folder (default $SLAPMESH_HOME, else ~/.slapmesh)')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  const context = { io, setExit: (code: number) => (exitCode = code) };
  for (const register of commands) register(program, context);
  return { program, exitCode: () => exitCode };
}

/** Runs one command line; returns the exit status. Bad input never shows a stack trace. */
export async function runProgram(argv: readonly string[], io: CliIo, commands: readonly Register[]): Promise<number> {
  const { program, exitCode } = buildProgram(io, commands);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode();
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ConfigError) {
      io.stderr(`${error.message}\n`);
      return EXIT_FAILED;
    }
    if (error instanceof NodeNotRunningError || error instanceof ControlError) {
      io.stderr(`slapmesh: ${error.message}\n`);
      return EXIT_FAILED;
    }
    if (error instanceof CliError) {
      io.stderr(`slapmesh: ${error.message}\n`);
      return error.exitCode;
    }
    throw error;
  }
}
