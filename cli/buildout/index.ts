// `slapmesh buildout resolve|annotate`: the configuration language, without installing.
import type { Command } from 'commander';
import { annotate } from '../../engine/config/annotate.js';
import { loadConfiguration, startEvaluation } from '../../engine/config/configuration.js';
import { addLocation, resolveSections } from '../../engine/config/resolve.js';
import { EXIT_OK } from '../io.js';
import type { CommandContext } from '../main.js';
import { assignments, type ProfileFlags } from './flags.js';
import { registerInstall } from './install.js';

function profileCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .argument('[assignments...]', 'section:option=value overrides (also += and -=)')
    .option('-c, --config <file>', 'the profile to read (path or URL)', 'buildout.cfg')
    .option('-o, --offline', 'never use the network (extended URLs only from the extends-cache)')
    .option('-N, --no-newest', 'prefer the extends-cache to downloading again');
}

export function registerBuildout(program: Command, { io, setExit }: CommandContext): void {
  const buildout = program.command('buildout').description('buildout profiles: install (the default), resolve, annotate');
  registerInstall(buildout, { io, setExit });

  profileCommand(buildout, 'resolve', 'print every section with every option substituted')
    .option('--json', 'print {"sections": …, "errors": …} (design.md §3)')
    .action(async (args: string[], flags: ProfileFlags) => {
      const configuration = await loadConfiguration({ configFile: flags.config, assignments: assignments(args, flags), cwd: io.cwd });
      const result = resolveSections(startEvaluation(configuration, addLocation));
      if (flags.json) {
        io.stdout(`${JSON.stringify(result)}\n`);
      } else {
        for (const [name, options] of Object.entries(result.sections)) {
          io.stdout(`[${name}]\n`);
          for (const [key, value] of Object.entries(options)) io.stdout(`${key} = ${value.replace(/\n/g, '\n    ')}\n`);
          io.stdout('\n');
        }
        for (const [name, message] of Object.entries(result.errors)) io.stderr(`[${name}] cannot be evaluated: ${message}\n`);
      }
      setExit(EXIT_OK);
    });

  profileCommand(buildout, 'annotate', 'print every option, unsubstituted, with the FILE:LINE each part came from')
    .option('-v, --verbose', 'the whole history of each option, newest first')
    .option('--section <name...>', 'only these sections')
    .action(async (args: string[], flags: ProfileFlags & { section?: string[] }) => {
      const configuration = await loadConfiguration({ configFile: flags.config, assignments: assignments(args, flags), cwd: io.cwd });
      startEvaluation(configuration);
      io.stdout(annotate(configuration, { baseDir: io.cwd, verbose: Boolean(flags.verbose), sections: flags.section ?? [] }));
      setExit(EXIT_OK);
    });
}
