/**
 * The real server as a child process (`node dist/src/server.js`) on a free loopback port,
 * exactly as an operator starts it, with its log in a file so a slow terminal cannot
 * throttle it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpGet } from './http-get.js';

export interface ServerProcess {
  readonly baseUrl: string;
  readonly pid: number;
  /** SIGTERM, then waits for a graceful exit (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
}

export interface StartServerOptions {
  readonly entry: string;
  /** Added to this process's environment (so operator settings such as BATCH_MAX_SIZE pass through). */
  readonly env: Readonly<Record<string, string>>;
  readonly logPath: string;
  /** Node options for the server, e.g. `--cpu-prof` to profile it. @default [] */
  readonly nodeArgs?: readonly string[];
  /** Longest wait for /v2/health/ready, in ms. @default 600000 */
  readonly readyTimeoutMs?: number;
}

/** A port free on 127.0.0.1 now (another process could take it before the server binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export async function startServer(options: StartServerOptions): Promise<ServerProcess> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const log = openSync(options.logPath, 'w');
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.entry], {
    // gRPC off unless asked for: its fixed default port (8081) would collide with any other
    // server on the machine, and only bench/grpc.ts measures it.
    env: { GRPC_PORT: '0', ...process.env, ...options.env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exit = exited(child);
  let gone = false;
  void exit.then(() => (gone = true));

  const deadline = Date.now() + (options.readyTimeoutMs ?? 600_000);
  for (;;) {
    if (gone) throw new Error(`the server exited with code ${child.exitCode} before it was ready; see ${options.logPath}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the server was not ready after ${options.readyTimeoutMs} ms; see ${options.logPath}`);
    }
    const ready = await httpGet(`${baseUrl}/v2/health/ready`, { timeoutMs: 2_000 }).catch(() => undefined);
    if (ready?.status === 200) break;
    await sleep(250);
  }

  return {
    baseUrl,
    pid: child.pid!,
    async stop(timeoutMs = 30_000) {
      if (gone) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}
