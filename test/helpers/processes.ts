// slapmesh as people run it: the bin in child processes (a node each), and one-shot commands.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../cli/bin.js', import.meta.url));
export const ENV = { ...process.env, SLAPMESH_ADVERT_INTERVAL_MS: '200' };

export interface Started {
  child: ChildProcess;
  peerId: string;
  addresses: string[];
  /** Everything the node wrote on stderr (its log) since it started. */
  stderr(): string;
}

/** Starts `slapmesh <args> --json` on a loopback port and resolves with the JSON line it prints once ready. */
export async function startNode(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const child = spawn(process.execPath, [BIN, ...args, '--listen', '/ip4/127.0.0.1/tcp/0', '--json'], { env: { ...ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  return { child, ...(JSON.parse(line) as { peerId: string; addresses: string[] }), stderr: () => stderr };
}

export function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: ENV, encoding: 'utf8', maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** Stops a node with SIGTERM (as Ctrl-C would) and resolves with its exit status. */
export async function stop(node: Started): Promise<number | null> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return node.child.exitCode;
  node.child.kill('SIGTERM');
  const [code] = (await once(node.child, 'exit')) as [number | null];
  return code;
}
