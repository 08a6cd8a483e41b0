// The slapmesh command line: one folder per command, assembled here.
import type { Command } from 'commander';
import { registerBuildout } from './buildout/index.js';
import { registerCache } from './cache/index.js';
import { registerSupply } from './supply/index.js';
import { registerDemo } from './demo/index.js';
import { registerNode } from './node/index.js';
import { registerPeers } from './peers/index.js';
import { registerTrust } from './trust/index.js';
import { registerRequest } from './request/index.js';
import { registerInstance } from './instance/index.js';
import { registerSimulate } from './simulate/index.js';
import { processIo, type CliIo } from './io.js';
import { buildProgram, runProgram, type Register } from './program.js';

export { version, type CommandContext } from './program.js';

const COMMANDS: readonly Register[] = [
  registerNode, registerPeers, registerTrust, registerSupply, registerCache, registerRequest, registerInstance, registerBuildout, registerDemo, registerSimulate,
];

/** Builds the program; every action reports its exit status through `setExit`. */
export function getCli(io: CliIo): { program: Command; exitCode: () => number } {
  return buildProgram(io, COMMANDS);
}

/** Runs one command line; returns the exit status. Bad input never shows a stack trace. */
export function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  return runProgram(argv, io, COMMANDS);
}
