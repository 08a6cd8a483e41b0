// `slapmesh simulate SCENARIO`: runs a scenario of real nodes on 127.0.0.1 (or the model, with no network),
// prints its table (or, with --json, the result as one JSON object), writes the report folder with --report,
// and exits 1 when an assertion failed.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { SCENARIOS } from '../../simulations/index.js';
import type { SimulationOptions, SimulationResult } from '../../simulations/types.js';
import { CliError, EXIT_FAILED, EXIT_OK } from '../io.js';
import type { CommandContext } from '../main.js';

/** The model plans beyond one machine: 10,000 nodes unless told (design.md §9). */
const MODEL_DEFAULT_NODES = 10_000;

interface SimulateFlags {
  nodes?: string;
  requests?: string;
  seed: string;
  report?: string;
  json?: boolean;
}

/** Every name `simulate` takes: the scenarios, then the model. */
export function simulationNames(): string[] {
  return [...SCENARIOS.keys(), 'model'];
}

export function registerSimulate(program: Command, { io, setExit }: CommandContext): void {
  program.command('simulate')
    .description('run a simulation: real nodes on 127.0.0.1 (join, cache, placement, churn, adversary; processes killed with SIGKILL in churn), or the model (no network)')
    .argument('<scenario>', `one of: ${simulationNames().join(', ')}`)
    .option('--nodes <n>', "how many nodes (default: the scenario's)")
    .option('--requests <m>', 'instance requests, for the scenarios that make them')
    .option('--seed <s>', 'seed of the random choices (victims, arrivals)', '1')
    .option('--report <dir>', 'write report.json and report.html (SVG plots) in this folder')
    .option('--json', 'the result as one JSON object: {scenario, nodes, ok, assertions, metrics, plots, …}')
    .action(async (name: string, flags: SimulateFlags) => {
      const scenario = SCENARIOS.get(name);
      if (!scenario && name !== 'model') throw new CliError(`unknown scenario ${JSON.stringify(name)}; known: ${simulationNames().join(', ')}`);
      const nodes = flags.nodes === undefined ? (scenario?.defaultNodes ?? MODEL_DEFAULT_NODES) : positiveInteger(flags.nodes, '--nodes');
      const requests = flags.requests === undefined ? undefined : positiveInteger(flags.requests, '--requests');
      const seed = Number(flags.seed);
      if (!Number.isSafeInteger(seed) || seed < 0) throw new CliError(`--seed must be a whole number ≥ 0, not ${JSON.stringify(flags.seed)}`);

      // Ctrl-C (or SIGTERM) stops the run: the scenario's harness stops its nodes and removes their folders.
      const abort = new AbortController();
      const interrupt = (signal: string) => () => {
        io.stderr(`${signal}: stopping the simulation…\n`);
        abort.abort(new CliError(`simulate ${name}: interrupted by ${signal}`));
      };
      const onSigint = interrupt('SIGINT');
      const onSigterm = interrupt('SIGTERM');
      process.on('SIGINT', onSigint);
      process.on('SIGTERM', onSigterm);
      const options: SimulationOptions = {
        nodes, seed, signal: abort.signal, progress: (line) => io.stderr(`${name}: ${line}\n`), ...(requests !== undefined ? { requests } : {}),
      };
      // Loaded here, not with the program: every node process loads the program, none of them needs these.
      const { formatTable, writeReport } = await import('../../simulations/report.js');
      let result: SimulationResult;
      try {
        result = scenario ? await scenario.run(options) : await (await import('../../simulations/model.js')).runModel(options);
      } catch (error) {
        if (abort.signal.aborted) throw abort.signal.reason as Error;
        if (error instanceof CliError) throw error;
        throw new CliError(`simulate ${name} could not run: ${(error as Error).message}`);
      } finally {
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigterm);
      }

      io.stdout(flags.json ? `${JSON.stringify(result)}\n` : `${formatTable(result)}\n`);
      if (flags.report !== undefined) {
        const written = await writeReport(resolve(io.cwd, flags.report), result);
        (flags.json ? io.stderr : io.stdout)(`report: ${written.html} (data: ${written.json})\n`);
      }
      const broken = result.assertions.filter((a) => !a.ok);
      if (broken.length > 0 || !result.ok) {
        io.stderr(`slapmesh: simulate ${name}: ${broken.length ? `assertions failed: ${broken.map((a) => a.id).join(', ')}` : 'the run failed'}\n`);
        setExit(EXIT_FAILED);
        return;
      }
      setExit(EXIT_OK);
    });
}

function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(value) || value < 1) throw new CliError(`${flag} must be a positive whole number, not ${JSON.stringify(text)}`);
  return value;
}
