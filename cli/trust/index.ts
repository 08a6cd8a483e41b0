// `slapmesh trust add|remove|list`: the running node's trust list, changed at once.
import type { Command } from 'commander';
import { callControl } from '../../node/control.js';
import { EXIT_OK } from '../io.js';
import type { CommandContext } from '../main.js';
import { dataDirOf } from '../node/index.js';

export function registerTrust(program: Command, { io, setExit }: CommandContext): void {
  const trust = program.command('trust').description('which peers this node trusts (cache entries, instance requests, --private)');
  for (const [name, description] of [['add', 'trust a peer'], ['remove', 'stop trusting a peer']] as const) {
    trust.command(name).description(description).argument('<peer>', 'a PeerId').option('--json', 'one JSON object')
      .action(async (peer: string, flags: { json?: boolean }, command: Command) => {
        const result = (await callControl(dataDirOf(command, io), `trust.${name}`, { peer })) as { peer: string; added?: boolean; removed?: boolean };
        const changed = result.added ?? result.removed;
        io.stdout(flags.json ? `${JSON.stringify(result)}\n` : `${result.peer} ${changed ? (name === 'add' ? 'trusted' : 'no longer trusted') : (name === 'add' ? 'was already trusted' : 'was not trusted')}\n`);
        setExit(EXIT_OK);
      });
  }
  trust.command('list').description('the trusted peers').option('--json', 'a JSON array')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const peers = (await callControl(dataDirOf(command, io), 'trust.list')) as string[];
      io.stdout(flags.json ? `${JSON.stringify(peers)}\n` : peers.map((p) => `${p}\n`).join(''));
      setExit(EXIT_OK);
    });
}
