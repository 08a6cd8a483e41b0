// `slapmesh peers`: the peers the running node knows, from their adverts.
import type { Command } from 'commander';
import { callControl } from '../../node/control.js';
import type { PeerView } from '../../node/node.js';
import { EXIT_OK } from '../io.js';
import type { CommandContext } from '../main.js';
import { dataDirOf } from '../node/index.js';

const GiB = 1024 ** 3;

export function registerPeers(program: Command, { io, setExit }: CommandContext): void {
  program.command('peers')
    .description('the peers the running node knows: hardware, releases, addresses, last seen')
    .option('--json', 'a JSON array')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const peers = (await callControl(dataDirOf(command, io), 'peers')) as PeerView[];
      if (flags.json) io.stdout(`${JSON.stringify(peers)}\n`);
      else if (peers.length === 0) io.stdout('no peers known yet\n');
      else {
        for (const p of peers) {
          io.stdout(`${p.peerId}  ${p.hardware.cpus} cpus, ${(p.hardware.memory / GiB).toFixed(1)} GiB, ${(p.hardware.disk / GiB).toFixed(0)} GiB free, ${p.hardware.os}  seen ${p.lastSeen}\n`);
          for (const address of p.addresses) io.stdout(`    ${address}\n`);
          for (const release of p.releases) io.stdout(`    release ${release.name} ${release.cid}\n`);
        }
      }
      setExit(EXIT_OK);
    });
}
