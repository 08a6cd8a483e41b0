// Finding a local TCP port that nothing listens on, by binding to it.
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

/** A port on `host` that is free right now (the OS picks it; another process may take it later). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer().listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
