// The slapmesh command line: one folder per command, assembled here.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../engine/config/errors.js';
import { registerBuildout } from './buildout/index.js';
import { registerCache } from './cache/index.js';
import { registerSupply } from './supply/index.js';
import { registerDemo } from './demo/index.js';
import { registerNode } from './node/index.js';
import { registerPeers } from './peers/index.js';
import { registerTrust } from './trust/index.js';
import { registerRequest } from './request/index.js';
import { registerInstance } from './instance/index.js';
import { ControlError, NodeNotRunningError } from '../node/control.js';
import { CliError, EXIT_FAILED, processIo, type CliIo } from './io.js';

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Builds the program; every action reports its exit status through `setExit`. */
export function getCli(io: CliIo): { program: Command; exitCode: () => number } {
  let exitCode = 0;
  const program = new Command('slapmesh')
    .description('a decentralized SlapOS: build software releases, share them, host instances, without a master')
    .version(version())
    .option('--data-dir <dir>', 'node data folder (default $SLAPMESH_HOME, else ~/.slapmesh)')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  const context = { io, setExit: (code: number) => (exitCode = code) };
  registerNode(program, context);
  registerPeers(program, context);
  registerTrust(program, context);
  registerSupply(program, context);
  registerCache(program, context);
  registerRequest(program, context);
  registerInstance(program, context);
  registerBuildout(program, context);
  registerDemo(program, context);
  return { program, exitCode: () => exitCode };
}

export interface CommandContext {
  readonly io: CliIo;
  readonly setExit: (code: number) => void;
}

/** Runs one command line; returns the exit status. Bad input never shows a stack trace. */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const { program, exitCode } = getCli(io);
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
