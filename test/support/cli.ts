import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI, as users run it (`npm test` builds it first). */
export const cliPath = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'dist',
  'src',
  'cli',
  'main.js',
);

export interface CliResult {
  /** Exit status (1 when the process was killed or could not start). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Modules loaded first with `node --import` (e.g. a test preload). */
  preload?: string[];
  timeoutMs?: number;
}

/** Runs `ltxvfs <args>` in a child process and collects its output and exit status. */
export function runCli(args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  if (!existsSync(cliPath))
    throw new Error(`${cliPath} is missing: build first (npm run build; npm test does it)`);
  const preload = (options.preload ?? []).flatMap((module) => ['--import', module]);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...preload, cliPath, ...args],
      { env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
