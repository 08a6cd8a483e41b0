// `slapmesh buildout [install]`: install the parts of a profile, with a line per part and, on a
// terminal, the last build output of each running part.
import type { Command } from 'commander';
import { install, InstallError, type InstallEvent } from '../../engine/install/installer.js';
import { RecipeError } from '../../engine/install/recipe.js';
import { CliError, EXIT_OK, type CliIo } from '../io.js';
import type { CommandContext } from '../main.js';
import type { Assignment } from '../../engine/config/configuration.js';
import { assignments, type ProfileFlags } from './flags.js';

interface InstallFlags extends ProfileFlags {
  jobs: string;
  frozen?: boolean;
}

export function registerInstall(buildout: Command, { io, setExit }: CommandContext): void {
  buildout
    .command('install', { isDefault: true })
    .description('install the parts of a profile (the default command)')
    .argument('[assignments...]', 'section:option=value overrides (also += and -=)')
    .option('-c, --config <file>', 'the profile to read (path or URL)', 'buildout.cfg')
    .option('-o, --offline', 'never use the network')
    .option('-N, --no-newest', 'prefer cached files to downloading again')
    .option('-j, --jobs <n>', 'independent parts built at once', '1')
    .option('--frozen', 'refuse any download without a checksum')
    .action(async (args: string[], flags: InstallFlags) => {
      const jobs = Number(flags.jobs);
      if (!Number.isInteger(jobs) || jobs < 1) throw new CliError(`-j takes a positive number, not ${flags.jobs}`);
      const extra = flags.frozen ? [{ section: 'buildout', option: 'frozen', value: 'true' }] : [];
      // Ctrl-C stops the builds; the parts they were making are cleaned up like any failure.
      const controller = new AbortController();
      const stop = () => controller.abort(new Error('interrupted'));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await installProfile({ configFile: flags.config, jobs, assignments: [...assignments(args, flags), ...extra], io, signal: controller.signal });
        setExit(EXIT_OK);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}

export interface InstallProfileOptions {
  configFile: string;
  jobs?: number;
  assignments?: Assignment[];
  io: CliIo;
  signal: AbortSignal;
}

/**
 * What `slapmesh buildout install` does, for the command and for the node's buildout runners
 * (cli/buildout-runner.ts): installs, printing zc.buildout's lines; an expected failure is a CliError.
 */
export async function installProfile(options: InstallProfileOptions): Promise<void> {
  const { io } = options;
  const progress = new Progress(io);
  try {
    const report = await install({
      configFile: options.configFile, cwd: io.cwd, jobs: options.jobs ?? 1, assignments: options.assignments ?? [],
      onEvent: (event) => progress.show(event), signal: options.signal,
    });
    progress.clear();
    const changed = report.installed.length + report.uninstalled.length;
    io.stdout(changed ? '' : 'Nothing changed.\n');
  } catch (error) {
    progress.clear();
    if (error instanceof InstallError) {
      throw new CliError(error.log ? `${error.message}\n  (full log: ${error.log})` : error.message);
    }
    if (error instanceof RecipeError) throw new CliError(error.message);
    throw error;
  }
}

/** zc.buildout's lines (`Installing x.`), plus a live status line on a terminal. */
class Progress {
  private readonly running = new Map<string, string>();
  private status = false;
  constructor(private readonly io: CliIo) {}

  show(event: InstallEvent): void {
    switch (event.type) {
      case 'install':
      case 'update':
      case 'uninstall':
        this.line(`${{ install: 'Installing', update: 'Updating', uninstall: 'Uninstalling' }[event.type]} ${event.part}.`);
        if (event.type !== 'uninstall') this.running.set(event.part, '');
        break;
      case 'log':
        this.running.set(event.part, event.line);
        this.redraw();
        break;
      case 'done':
        this.running.delete(event.part);
        if (event.seconds >= 1) this.line(`  ${event.part}: done in ${event.seconds.toFixed(1)} s`);
        else this.redraw();
        break;
      case 'failed':
        this.running.delete(event.part);
        this.redraw();
        break;
    }
  }

  clear(): void {
    if (this.status) this.io.stdout('\r\x1b[K');
    this.status = false;
  }

  private line(text: string): void {
    this.clear();
    this.io.stdout(`${text}\n`);
    this.redraw();
  }

  private redraw(): void {
    if (!this.io.isTTY || this.running.size === 0) return;
    const width = Math.max(20, (process.stdout.columns || 100) - 1);
    const text = [...this.running].map(([part, last]) => `[${part}] ${last}`).join('  ').replace(/\s+/g, ' ');
    this.io.stdout(`\r\x1b[K${text.slice(0, width)}`);
    this.status = true;
  }
}
