import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SERVER_VERSION } from '../../../src/app.js';
import { projectVersion } from '../../../src/system/project-root.js';
import { REPO_ROOT } from '../../helpers.js';

describe('projectVersion', () => {
  it("is package.json's version, and the one the server reports", () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.match(version, /^\d+\.\d+\.\d+/);
    assert.equal(projectVersion(REPO_ROOT), version);
    assert.equal(SERVER_VERSION, version);
  });

  it('names the file when package.json has no version', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'project-root-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'package.json'), '{"name": "x"}');
    assert.throws(
      () => projectVersion(dir),
      (err: Error) => err.message === `${join(dir, 'package.json')} has no \`version\``,
    );
  });
});
