/**
 * The probe's floor: an HTTP server that does nothing but answer, in a process of its own at
 * the serving process's priority, probed like the server under test while the load runs. Its
 * probe latency is what this machine's scheduler gives any process while the load keeps every
 * core busy: no server can answer a probe faster than that, so the serving process's probe
 * latency is read against it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

export interface FloorServer {
  /** Its base URL; every path answers 200 `ok`. */
  readonly url: string;
  stop(): Promise<void>;
}

const SOURCE = `
const server = require('node:http').createServer((request, response) => {
  request.resume();
  response.end('ok');
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

export async function startFloorServer(): Promise<FloorServer> {
  const child: ChildProcess = spawn(process.execPath, ['-e', SOURCE], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`the floor server exited (code ${String(code)}) before listening`);
    }),
  ])) as [string];
  lines.close();
  return {
    url: `http://127.0.0.1:${Number(line)}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
