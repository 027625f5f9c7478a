/**
 * scripts/container-check.sh and scripts/container/build-stand-in-base.sh, run for what they can
 * do without root, podman or a network: the base image they build on (or stand in for) is the
 * Dockerfile's NODE_IMAGE, and a machine without their tools is told what to install.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readDockerfile } from './helpers/dockerfile.js';
import { readRepoText, repoPath } from './helpers/repo.js';

const CHECK = repoPath('scripts', 'container-check.sh');
const STAND_IN = repoPath('scripts', 'container', 'build-stand-in-base.sh');
const nodeImage = readDockerfile('Dockerfile').globalArgs.get('NODE_IMAGE') ?? '';

function run(script: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const result = spawnSync('bash', [script, ...args], { encoding: 'utf8', env, timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, output: result.stdout + result.stderr };
}

/** `key=value` lines. */
function plan(stdout: string): Map<string, string> {
  return new Map(
    stdout
      .trim()
      .split('\n')
      .map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]),
  );
}

/** A PATH holding only the listed host tools, so that a script sees everything else as missing. */
function pathWith(tools: string[]): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), 'container-scripts-'));
  for (const tool of tools) {
    const which = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
    if (which.status === 0) symlinkSync(which.stdout.trim(), join(dir, tool));
  }
  // A fresh HOME and cache: no cached debootstrap root filesystem to stand in for debootstrap.
  return { dir, env: { PATH: dir, HOME: dir, STAND_IN_CACHE: join(dir, 'cache') } };
}

const BASIC_TOOLS = ['bash', 'dirname', 'sed', 'head', 'id', 'uname', 'dpkg', 'tr', 'ls'];

describe('scripts/container-check.sh', () => {
  it("builds on the Dockerfile's NODE_IMAGE, read from the Dockerfile, not a name of its own", () => {
    assert.match(nodeImage, /^docker\.io\/library\/node:\d+-[a-z]+-slim$/);
    const result = run(CHECK, ['--plan', '--target', 'baked-default']);
    assert.equal(result.status, 0, result.output);
    const values = plan(result.stdout);
    assert.equal(values.get('base_image'), nodeImage);
    assert.equal(values.get('target'), 'baked-default');
    for (const file of ['scripts/container-check.sh', 'scripts/container/build-stand-in-base.sh', 'scripts/container/node-image.sh']) {
      const code = readRepoText(file)
        .split('\n')
        .filter((line) => !/^\s*#/.test(line));
      assert.deepEqual(
        code.filter((line) => /node:\d/.test(line)),
        [],
        `${file} names a node image in its code`,
      );
    }
  });

  it('says everything it needs and how to get it when podman and the rest are missing', (t) => {
    const { dir, env } = pathWith(BASIC_TOOLS);
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const result = run(CHECK, [], env);
    assert.equal(result.status, 1, result.output);
    for (const needed of [
      /podman .*apt-get install podman/,
      /curl: apt-get install curl/,
      /unshare \(util-linux\)/,
      /node on the host/,
      /network to the npm registry and a Debian mirror/,
      /debootstrap \(apt-get install debootstrap\)/,
    ]) {
      assert.match(result.output, needed);
    }
    assert.doesNotMatch(result.output, /^\[container-check\] FAIL: podman is not installed$/m);
  });
});

describe('scripts/container/build-stand-in-base.sh', () => {
  const tmpDirs: string[] = [];
  after(() => {
    for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  });

  it("stands in for the Dockerfile's NODE_IMAGE by default: its Debian suite, its Node line's binary and that line's npm, from the npm registry", () => {
    const result = run(STAND_IN, ['--plan']);
    assert.equal(result.status, 0, result.output);
    const values = plan(result.stdout);
    const [, major, suite] = /node:(\d+)-([a-z]+)-slim$/.exec(nodeImage) ?? [];
    assert.equal(values.get('image'), nodeImage);
    assert.equal(values.get('debian_suite'), suite);
    assert.match(values.get('node_package') ?? '', new RegExp(`^node-linux-(x64|arm64)@${major}$`));
    assert.match(values.get('npm_package') ?? '', /^npm@\d+$/);
    // Node 26's binary links libatomic.so.1, which a minbase root filesystem lacks.
    assert.match(values.get('debian_include') ?? '', /\blibatomic1\b/);
  });

  it('follows another name: suite, exact version and npm major come from the tag', () => {
    const values = plan(run(STAND_IN, ['--plan', 'docker.io/library/node:22.11.0-bookworm']).stdout);
    assert.equal(values.get('debian_suite'), 'bookworm');
    assert.match(values.get('node_package') ?? '', /@22\.11\.0$/);
    assert.equal(values.get('npm_package'), 'npm@10');
  });

  it('refuses a name it cannot stand in for precisely', () => {
    for (const name of ['docker.io/library/node:lts-alpine', 'docker.io/library/node:26', 'docker.io/library/debian:trixie-slim']) {
      const result = run(STAND_IN, ['--plan', name]);
      assert.notEqual(result.status, 0, name);
      assert.match(result.output, /cannot read a Node version and Debian suite/, name);
    }
  });

  it('says what it needs and how to get it when podman and debootstrap are missing', () => {
    const { dir, env } = pathWith(BASIC_TOOLS);
    tmpDirs.push(dir);
    const result = run(STAND_IN, [nodeImage], env);
    assert.equal(result.status, 1, result.output);
    for (const needed of [
      /podman: apt-get install podman/,
      /debootstrap .*apt-get install debootstrap/,
      /curl: apt-get install curl/,
      /npm \(to fetch node-linux-/,
    ]) {
      assert.match(result.output, needed);
    }
  });
});
