// The checks of SlapOS's promise plugins (slapos.toolbox: check_url_available, check_socket_listening /
// check_port_listening, check_command_execute), with their config keys and defaults. promise.plugin
// writes a script holding this function's source, runnable by a person; the node runs the network
// checks in its own process instead (node/promises.ts), as SlapOS's promise launcher loads plugins:
// a Node start per check and per instance every 30 s would cost more than the instances themselves.

/** What a check found: `message` is one line. */
export interface CheckOutcome {
  ok: boolean;
  message: string;
}

/** The comment line of a promise script that says, as JSON, which check it runs with which config. */
export const PROMISE_MARKER = '// slapmesh-promise: ';

/** The checks that only open a connection: safe and cheap to run in the node's process. */
export const IN_PROCESS_CHECKS: readonly string[] = ['check_url_available', 'check_socket_listening', 'check_port_listening'];

/**
 * Runs one check. Self-contained (it uses nothing from this module and reaches Node's modules through
 * process.getBuiltinModule), because its source is copied into the promise scripts. Never rejects.
 */
export function checkPromise(check: string, config: Record<string, string>): Promise<{ ok: boolean; message: string }> {
  return new Promise((resolve) => {
    const cleanups: (() => void)[] = [];
    let finished = false;
    const finish = (ok: boolean, message: string): void => {
      if (finished) return;
      finished = true;
      for (const cleanup of cleanups) cleanup();
      resolve({ ok, message: message.replace(/\s+/g, ' ').trim() });
    };
    const seconds = Number(config['timeout'] || 20);
    const timer = setTimeout(() => finish(false, `Error: no answer within ${seconds} s`), seconds * 1000);
    cleanups.push(() => clearTimeout(timer));

    if (check === 'check_url_available') {
      const url = config['url'] ?? '';
      if (!url) return finish(false, 'Error: config-url is not set');
      const expected = Number(config['http-code'] || config['http_code'] || 200);
      const ignoreCode = ['1', 'true'].includes(config['ignore-code'] ?? '');
      const client = url.startsWith('https:') ? process.getBuiltinModule('node:https') : process.getBuiltinModule('node:http');
      const auth = config['username'] ? `${config['username']}:${config['password'] ?? ''}` : undefined;
      const verify = ['1', 'true'].includes(config['verify'] ?? '');
      // No keep-alive agent: a connection left open would hold the server and, in a script, the process.
      const request = client.get(url, { agent: false, rejectUnauthorized: verify, ...(auth ? { auth } : {}) }, (response) => {
        response.resume();
        const code = response.statusCode ?? 0;
        if (ignoreCode || code === expected) finish(true, `${url} answered ${code}`);
        else finish(false, `Error: ${url} answered ${code}, expected ${expected}`);
      });
      cleanups.push(() => request.destroy());
      request.on('error', (error) => finish(false, `Error: ${url} cannot be reached: ${error.message}`));
    } else if (check === 'check_socket_listening' || check === 'check_port_listening') {
      const net = process.getBuiltinModule('node:net');
      const host = config['host'] || config['hostname'] || '';
      const path = config['pathname'] || (config['abstract'] ? `\0${config['abstract']}` : '');
      const port = Number(config['port']);
      if (!path && (!host || !Number.isInteger(port))) return finish(false, 'Error: set config-host and config-port, config-pathname or config-abstract');
      const where = path ? `socket ${config['pathname'] || `@${config['abstract']}`}` : `${host.includes(':') ? `[${host}]` : host}:${port}`;
      const socket = path ? net.connect(path) : net.connect(port, host);
      cleanups.push(() => socket.destroy());
      socket.on('connect', () => finish(true, `${where} is listening`));
      socket.on('error', (error) => finish(false, `Error: nothing listening on ${where}: ${error.message}`));
    } else if (check === 'check_command_execute') {
      const command = config['command'] ?? '';
      if (!command) return finish(false, 'Error: config-command is not set');
      const child = process.getBuiltinModule('node:child_process').spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000)));
      child.on('error', (error) => finish(false, `Error: cannot run ${command}: ${error.message}`));
      child.on('close', (code) => {
        const last = output.trim().split('\n').pop() ?? '';
        finish(code === 0, code === 0 ? last || `${command} succeeded` : `Error: ${command} failed (exit ${code})${last ? `: ${last}` : ''}`);
      });
    } else {
      finish(false, `Error: unknown check ${check}`);
    }
  });
}

/** The check and config a promise script says it runs (its PROMISE_MARKER line), or undefined. */
export function readPromiseMarker(script: string): { check: string; config: Record<string, string> } | undefined {
  const line = script.split('\n', 8).find((l) => l.startsWith(PROMISE_MARKER));
  if (!line) return undefined;
  try {
    const value: unknown = JSON.parse(line.slice(PROMISE_MARKER.length));
    if (typeof value !== 'object' || value === null) return undefined;
    const { check, config } = value as { check?: unknown; config?: unknown };
    if (typeof check !== 'string' || typeof config !== 'object' || config === null || Array.isArray(config)) return undefined;
    if (!Object.values(config).every((v) => typeof v === 'string')) return undefined;
    return { check, config: config as Record<string, string> };
  } catch {
    return undefined;
  }
}
