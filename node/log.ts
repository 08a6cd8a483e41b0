// A node's log: every line to node.log in the data directory and to stderr (never stdout, which
// carries the node's machine-readable output). Debug lines only with --verbose.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Logger {
  (message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

export interface LogSink {
  forComponent(component: string): Logger;
}

export function fileLog(dataDir: string, options: { verbose: boolean; stderr?: (line: string) => void }): LogSink {
  const file = join(dataDir, 'node.log');
  const stderr = options.stderr ?? ((line: string) => process.stderr.write(line));
  const write = (level: string, component: string, message: string) => {
    const line = `${new Date().toISOString()} ${level} ${component}: ${message}\n`;
    try {
      appendFileSync(file, line);
    } catch {
      // The data directory is gone (removed under a node still stopping, say): logging must not kill the node.
    }
    stderr(line);
  };
  return {
    forComponent(component: string): Logger {
      const log = ((message: string) => write('info', component, message)) as Logger;
      log.error = (message) => write('error', component, message);
      log.debug = (message) => {
        if (options.verbose) write('debug', component, message);
      };
      return log;
    },
  };
}
