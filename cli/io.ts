// What a command may touch of the outside world; tests pass their own.
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly isTTY: boolean;
  /** The terminal's width, when stderr is one: a line redrawn in place must fit in it. */
  readonly columns?: number;
}

export function processIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    cwd: process.cwd(),
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
    ...(process.stderr.isTTY && process.stderr.columns > 0 ? { columns: process.stderr.columns } : {}),
  };
}

/** Exit statuses of design.md §8. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_NOT_READY = 2;

/** An expected failure: one line for the user, no stack trace. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(message: string, readonly exitCode = EXIT_FAILED) {
    super(message);
  }
}
