// `slapmesh buildout …` alone: the same command without loading the node (libp2p and the rest), which
// would triple its start-up cost — a node runs it for every instance it deploys (node/deploy.ts).
import { registerBuildout } from './buildout/index.js';
import { processIo } from './io.js';
import { runProgram } from './program.js';

export function main(argv: readonly string[]): Promise<number> {
  return runProgram(argv, processIo(), [registerBuildout]);
}
