// `slapmesh instance list|show|start|stop|destroy`: the instances this node owns (and, with --hosted, those
// it hosts for others).
import type { Command } from 'commander';
import { callControl } from '../../node/control.js';
import type { InstanceJson } from '../../node/instances.js';
import { EXIT_OK, type CliIo } from '../io.js';
import type { CommandContext } from '../main.js';
import { dataDirOf } from '../node/index.js';

/** How long a start, stop or destroy may take to reach the host (and a moved instance to be placed). */
const CHANGE_TIMEOUT_MS = 60_000;

export function registerInstance(program: Command, { io, setExit }: CommandContext): void {
  const instance = program.command('instance').description('the instances this node owns (or hosts, with --hosted)');
  instance.command('list').description('the instances this node requested').option('--hosted', 'those this node hosts instead').option('--json', 'a JSON array')
    .action(async (flags: { hosted?: boolean; json?: boolean }, command: Command) => {
      const list = (await callControl(dataDirOf(command, io), 'instance.list', { hosted: Boolean(flags.hosted) })) as InstanceJson[];
      if (flags.json) io.stdout(`${JSON.stringify(list)}\n`);
      else for (const item of list) io.stdout(`${item.reference}  ${item.state}  ${item.status}  ${flags.hosted ? `owner ${item.owner}` : `host ${item.host ?? '-'}`}${item.connection['url'] ? `  ${item.connection['url']}` : ''}\n`);
      setExit(EXIT_OK);
    });
  instance.command('show').description('one instance this node requested').argument('<reference>').option('--json', 'one JSON object')
    .action(async (reference: string, flags: { json?: boolean }, command: Command) => {
      printInstance(io, (await callControl(dataDirOf(command, io), 'instance.show', { reference })) as InstanceJson, flags.json);
      setExit(EXIT_OK);
    });
  for (const [name, description] of [['start', 'start an instance'], ['stop', 'stop an instance (its files stay)'], ['destroy', 'destroy an instance and free its partition']] as const) {
    instance.command(name).description(description).argument('<reference>').option('--json', 'one JSON object')
      .action(async (reference: string, flags: { json?: boolean }, command: Command) => {
        const changed = (await callControl(dataDirOf(command, io), `instance.${name}`, { reference }, { idleTimeoutMs: CHANGE_TIMEOUT_MS })) as InstanceJson;
        printInstance(io, changed, flags.json);
        setExit(EXIT_OK);
      });
  }
}

export function printInstance(io: CliIo, instance: InstanceJson, json: boolean | undefined): void {
  if (json) {
    io.stdout(`${JSON.stringify(instance)}\n`);
    return;
  }
  io.stdout(`${instance.reference}: ${instance.state}, ${instance.status}${instance.message ? ` (${instance.message})` : ''}, on ${instance.host ?? 'no host yet'}\n`);
  // Values come from the host: anything but plain text is printed quoted, so it cannot drive the terminal.
  const shown = (text: string) => (/^[\x20-\x7e\u00a0-\uffff]*$/u.test(text) ? text : JSON.stringify(text));
  for (const [key, value] of Object.entries(instance.connection).sort()) io.stdout(`  ${shown(key)} = ${shown(value)}\n`);
}
