// `slapmesh demo`: for now, resolve the example hello release and show what the engine sees.
import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadConfiguration, startEvaluation } from '../../engine/config/configuration.js';
import { addLocation, resolveSections } from '../../engine/config/resolve.js';
import { EXIT_OK } from '../io.js';
import type { CommandContext } from '../main.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/hello/software.cfg', import.meta.url));

export function registerDemo(program: Command, { io, setExit }: CommandContext): void {
  program
    .command('demo')
    .description('show slapmesh at work on the example hello release')
    .action(async () => {
      const started = performance.now();
      const configuration = await loadConfiguration({ configFile: EXAMPLE, cwd: io.cwd, assignments: [] });
      const result = resolveSections(startEvaluation(configuration, addLocation));
      const ms = performance.now() - started;
      io.stdout(`Resolved ${EXAMPLE}\n`);
      io.stdout(`  ${configuration.files.length} files read in depth-first order:\n`);
      for (const file of configuration.files) io.stdout(`    ${file.joined}\n`);
      const parts = result.sections['buildout']?.['parts']?.split(/\s+/).filter(Boolean) ?? [];
      io.stdout(`  parts to install: ${parts.join(', ')}\n`);
      for (const part of parts) {
        io.stdout(`\n[${part}]\n`);
        for (const [key, value] of Object.entries(result.sections[part] ?? {})) {
          io.stdout(`  ${key} = ${value.replace(/\n/g, '\n      ')}\n`);
        }
      }
      const errors = Object.keys(result.errors);
      io.stdout(`\n${Object.keys(result.sections).length} sections resolved, ${errors.length} with errors, in ${ms.toFixed(1)} ms\n`);
      setExit(EXIT_OK);
    });
}
