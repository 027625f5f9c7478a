#!/usr/bin/env node
// Runs `npm run build` only when an input of the build changed since the last successful one,
// so that `npm start` (and the model and bench scripts) on unchanged sources starts in seconds
// instead of recompiling. Inputs: every file and folder under the compiled trees and the
// project files that steer tsc; a folder's own mtime changes when a file in it is added,
// removed or renamed, so deletions count too. The stamp (dist/.build-stamp) carries the time
// the last successful build started: anything touched after that start is newer than it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const STAMP = join(root, 'dist', '.build-stamp');
const TREES = ['src', 'test', 'bench', 'web'];
const FILES = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.web.json'];

/** The newest mtime (ms) of a path and, for a folder, of everything below it. */
function newestMtime(path) {
  let info;
  try {
    info = statSync(path);
  } catch {
    return 0;
  }
  let newest = info.mtimeMs;
  if (info.isDirectory()) {
    for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  }
  return newest;
}

function newestInput() {
  return Math.max(...[...TREES, ...FILES].map((name) => newestMtime(join(root, name))));
}

const stampMs = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0;
if (stampMs > 0 && newestInput() < stampMs) {
  process.stderr.write('build: dist/ is up to date with the sources, not compiling\n');
  process.exit(0);
}

// Coarse file systems store mtimes in whole seconds: round down, so that an edit made during
// the build's first second still counts as newer.
const startedSec = Math.floor(Date.now() / 1000);
process.stderr.write('build: sources changed since the last build (or there is none): compiling\n');
const npm = process.env.npm_execpath
  ? spawnSync(process.execPath, [process.env.npm_execpath, 'run', 'build', '--silent'], { cwd: root, stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
if (npm.error) throw npm.error;
if (npm.status !== 0) process.exit(npm.status ?? 1);
writeFileSync(STAMP, "The time the last successful build started (this file's mtime); see scripts/build-if-stale.mjs.\n");
utimesSync(STAMP, startedSec, startedSec);
