// Imported first by the benchmarks that run nodes, so that their processes run V8 as `slapmesh` runs a
// node's (cli/bin.ts; node/v8-flags.ts says why).
import { countExternalMemoryAsHeld } from '../node/v8-flags.js';

countExternalMemoryAsHeld();
