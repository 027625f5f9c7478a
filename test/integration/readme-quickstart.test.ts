/**
 * A newcomer's first minutes, from README.md as written: the blocks marked
 * `<!-- readme-test: NAME -->` are extracted from the README and run in a fresh copy of the
 * project that has no ../shared beside it, with the real npm, curl, python3 and node. Only the
 * port is changed (README's 8080 → a free one, so the suite can run beside a server) and the
 * gRPC port turned off.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { describe, it } from 'node:test';
import { freePort } from '../../bench/lib/server-process.js';
import { REPO_ROOT } from '../helpers.js';

/** The code of the fenced block that follows `<!-- readme-test: name -->`. */
export function readmeBlock(readme: string, name: string): string {
  const marker = `<!-- readme-test: ${name} -->`;
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `README.md has no ${marker}`);
  const match = /^\s*```[a-z]*\n([\s\S]*?)\n```/.exec(readme.slice(at + marker.length));
  assert.ok(match?.[1], `a fenced code block follows ${marker}`);
  return match[1];
}

/** Copies the project as a fresh clone has it: no dependencies, no build, no models, no ../shared. */
async function freshCopy(): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), 'readme-'));
  const project = join(parent, 'resnet-serve');
  const skipped = new Set(['node_modules', 'dist', '.git', '.bench', 'coverage', 'test-output']);
  await cp(REPO_ROOT, project, {
    recursive: true,
    filter: (source) => {
      const path = relative(REPO_ROOT, source);
      if (path === '') return true;
      const [top, ...rest] = path.split(sep);
      if (skipped.has(top ?? '')) return false;
      return top !== 'models' || rest.length === 0 || path === join('models', 'README.md');
    },
  });
  assert.equal(existsSync(join(parent, 'shared')), false);
  return project;
}

/** The environment of a person's shell: nothing of the npm and node:test running this test. */
function shellEnv(port: number): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_|^NODE_TEST_CONTEXT$|^INIT_CWD$/i.test(name)));
  return { ...env, PORT: String(port), GRPC_PORT: '0', LOG_LEVEL: 'info' };
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A server started from a shell line, in its own process group (as a terminal's job is). */
function startServer(line: string, cwd: string, env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn('bash', ['-c', line], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Resolves once the server logs that it listens; fails if it exits first. */
async function listening(server: { child: ChildProcess; output: () => string }): Promise<void> {
  while (!/"msg":"listening; loading models"/.test(server.output())) {
    assert.equal(server.child.exitCode, null, `the server exited before listening:\n${server.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Whatever is left of a server's process group, killed (cleanup after a failure). */
function killGroup(child: ChildProcess): void {
  try {
    process.kill(-(child.pid ?? 0), 'SIGKILL');
  } catch {
    // The group is gone already.
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls until nothing listens on the port any more; a server left running (an orphan) fails. */
async function portCloses(port: number, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (!(await portOpen(port))) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`something still listens on port ${port} after ${what}`);
}

const forPort = (code: string, port: number) => code.replaceAll('localhost:8080', `localhost:${port}`);

describe('README quick start, as written, on a fresh copy without ../shared', () => {
  it(
    'installs, serves the trained default model, classifies the sample cat from curl, Python and JavaScript, stops on Ctrl-C, and restarts without compiling',
    { timeout: 15 * 60_000 },
    async (t) => {
      const project = await freshCopy();
      t.after(() => rm(join(project, '..'), { recursive: true, force: true }));
      const readme = await readFile(join(project, 'README.md'), 'utf8');
      assert.ok(readme.startsWith('# resnet-serve\n\n<!-- readme-test: commands -->\n```sh\n'), 'README opens with the two commands');
      const [serveLine, testLine] = readmeBlock(readme, 'commands')
        .split('\n')
        .map((line) => line.replace(/\s+#.*$/, ''));
      assert.equal(serveLine, 'npm ci && npm start');
      assert.equal(testLine, 'npm ci && npm test', 'the test command, which this very suite is (not run again here)');

      const port = await freePort();
      const env = shellEnv(port);
      const server = startServer(serveLine, project, env);
      t.after(() => killGroup(server.child));

      // "In another terminal": wait for readiness, then the cat. The wait line's own budget is
      // for a person's machine; here the rest of the suite shares the cores with npm ci and tsc,
      // so the line runs once the server listens (it still waits out the model loading's 503s).
      await listening(server);
      const [waitLine, predictLine] = forPort(readmeBlock(readme, 'try'), port).split('\n');
      const ready = await run('bash', ['-c', waitLine ?? ''], project, env);
      assert.equal(ready.status, 0, `the wait line succeeds once the server is ready: ${ready.stderr}\n${server.output().slice(-3000)}`);
      assert.deepEqual(JSON.parse(ready.stdout), { ready: true });
      const answer = await run('bash', ['-c', predictLine ?? ''], project, env);
      assert.equal(answer.status, 0, answer.stderr);
      const body = JSON.parse(answer.stdout) as { model_name: string; predictions: Array<{ label: string; score: number; top_k: unknown[] }> };
      assert.equal(body.model_name, 'resnet20-cifar10', 'the shipped trained model, copied into ./models');
      assert.equal(body.predictions[0]?.label, 'cat');
      assert.ok((body.predictions[0]?.score ?? 0) > 0.9);
      assert.equal(body.predictions[0]?.top_k.length, 3);
      assert.ok(existsSync(join(project, 'models', 'resnet20-cifar10', 'model.onnx')));

      const python = await run('/usr/bin/python3', ['-c', forPort(readmeBlock(readme, 'python'), port)], project, env);
      assert.equal(python.status, 0, python.stderr);
      assert.equal(python.stdout.trim(), 'cat');
      const javascript = await run(process.execPath, ['--input-type=module', '-e', forPort(readmeBlock(readme, 'javascript'), port)], project, env);
      assert.equal(javascript.status, 0, javascript.stderr);
      assert.equal(javascript.stdout.trim(), 'cat');

      // Ctrl-C: the terminal sends SIGINT to the whole foreground job.
      process.kill(-(server.child.pid ?? 0), 'SIGINT');
      await server.exited;
      await portCloses(port, 'Ctrl-C');
      assert.match(server.output(), /build: sources changed since the last build \(or there is none\): compiling/, 'the first start compiles');

      // A restart on unchanged sources does not run the compiler, and `kill` of npm's PID (not
      // the group) takes the server with it: npm start execs node.
      const compiled = (await stat(join(project, 'dist', 'src', 'server.js'))).mtimeMs;
      const again = startServer('npm start', project, env);
      t.after(() => killGroup(again.child));
      await listening(again);
      const readyAgain = await run('bash', ['-c', waitLine ?? ''], project, env);
      assert.equal(readyAgain.status, 0, again.output().slice(-3000));
      assert.match(again.output(), /build: dist\/ is up to date with the sources, not compiling/);
      assert.equal((await stat(join(project, 'dist', 'src', 'server.js'))).mtimeMs, compiled, 'dist/ was not rewritten');
      process.kill(again.child.pid ?? 0, 'SIGTERM');
      await again.exited;
      await portCloses(port, "kill of npm start's PID");
    },
  );
});
