/**
 * The version policy (Triton's ModelVersionPolicy in config.json's JSON form): what each kind
 * selects among the version folders present, and the precise refusals of a malformed policy
 * or of a `specific` version that is not there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModelConfigError } from '../../../src/serving/model-config.js';
import { DEFAULT_VERSION_POLICY, parseVersionPolicy, selectVersions, versionOfFolderName } from '../../../src/serving/version-policy.js';

const FILE = '/repo/m/config.json';
const refused = (message: string) => (err: Error) => err instanceof ModelConfigError && err.message === message;

describe('versionOfFolderName', () => {
  it('takes positive integers written plainly, and nothing else', () => {
    assert.equal(versionOfFolderName('1'), 1);
    assert.equal(versionOfFolderName('42'), 42);
    for (const name of ['0', '01', '-1', '+1', '1.0', '1e3', 'v1', ' 1', 'latest', '', '99999999999999999999']) {
      assert.equal(versionOfFolderName(name), undefined, JSON.stringify(name));
    }
  });
});

describe('parseVersionPolicy', () => {
  it('reads the three kinds, as Triton writes them', () => {
    assert.deepEqual(parseVersionPolicy({ latest: { num_versions: 2 } }, FILE), { latest: { num_versions: 2 } });
    assert.deepEqual(parseVersionPolicy({ latest: {} }, FILE), { latest: { num_versions: 1 } }, 'num_versions defaults to 1');
    assert.deepEqual(
      parseVersionPolicy({ specific: { versions: [3, '1'] } }, FILE),
      { specific: { versions: [3, 1] } },
      'int64 as proto3 JSON writes it: a string',
    );
    assert.deepEqual(parseVersionPolicy({ all: {} }, FILE), { all: {} });
    assert.deepEqual(DEFAULT_VERSION_POLICY, { latest: { num_versions: 1 } });
  });

  it('refuses a malformed policy, naming the file and the field', () => {
    const cases: Array<[unknown, string]> = [
      [
        'latest',
        'field `version_policy` must be an object such as {"latest": {"num_versions": 1}}, {"specific": {"versions": [1, 2]}} or {"all": {}}, got "latest"',
      ],
      [{}, 'field `version_policy` must hold exactly one of "latest", "specific", "all", got none'],
      [{ latest: {}, all: {} }, 'field `version_policy` must hold exactly one of "latest", "specific", "all", got "latest", "all"'],
      [{ newest: {} }, 'field `version_policy` must hold exactly one of "latest", "specific", "all", got "newest"'],
      [{ all: [] }, 'field `version_policy.all` must be an object, got []'],
      [{ all: { x: 1 } }, 'field `version_policy.all.x` is not a known field (known: none)'],
      [{ latest: { num_versions: 0 } }, 'field `version_policy.latest.num_versions` must be an integer from 1 and up, got 0'],
      [{ latest: { num_versions: 1.5 } }, 'field `version_policy.latest.num_versions` must be an integer from 1 and up, got 1.5'],
      [{ latest: { count: 2 } }, 'field `version_policy.latest.count` is not a known field (known: num_versions)'],
      [{ specific: { versions: [] } }, 'field `version_policy.specific.versions` must be a non-empty list of version numbers, got []'],
      [{ specific: {} }, 'field `version_policy.specific.versions` must be a non-empty list of version numbers, got undefined'],
      [{ specific: { versions: [0] } }, 'field `version_policy.specific.versions` must hold positive integers, got 0'],
      [{ specific: { versions: ['01'] } }, 'field `version_policy.specific.versions` must hold positive integers, got "01"'],
      [{ specific: { versions: [2, '2'] } }, 'field `version_policy.specific.versions` lists version 2 twice'],
    ];
    for (const [raw, message] of cases) assert.throws(() => parseVersionPolicy(raw, FILE), refused(`${FILE}: ${message}`), JSON.stringify(raw));
  });
});

describe('selectVersions', () => {
  const present = [1, 2, 3, 10];

  it('serves the latest N, highest first; N beyond what is there serves them all', () => {
    assert.deepEqual(selectVersions({ latest: { num_versions: 1 } }, present, FILE, '/repo/m'), [10]);
    assert.deepEqual(selectVersions({ latest: { num_versions: 2 } }, present, FILE, '/repo/m'), [10, 3], 'numeric order: 10 is above 3');
    assert.deepEqual(selectVersions({ latest: { num_versions: 9 } }, present, FILE, '/repo/m'), [10, 3, 2, 1]);
  });

  it('serves exactly the specific versions, or every one', () => {
    assert.deepEqual(selectVersions({ specific: { versions: [1, 3] } }, present, FILE, '/repo/m'), [3, 1]);
    assert.deepEqual(selectVersions({ all: {} }, present, FILE, '/repo/m'), [10, 3, 2, 1]);
  });

  it('fails naming a specific version that is not there, and what is', () => {
    assert.throws(
      () => selectVersions({ specific: { versions: [2, 4] } }, present, FILE, '/repo/m'),
      refused(`${FILE}: field \`version_policy.specific.versions\` names version 4, but /repo/m has no such version folder (it has: 1, 2, 3, 10)`),
    );
    assert.throws(
      () => selectVersions({ specific: { versions: [4, 5] } }, present, FILE, '/repo/m'),
      refused(`${FILE}: field \`version_policy.specific.versions\` names versions 4, 5, but /repo/m has no such version folder (it has: 1, 2, 3, 10)`),
    );
  });

  it('fails when there is no version at all', () => {
    assert.throws(
      () => selectVersions({ all: {} }, [], FILE, '/repo/m'),
      refused('/repo/m: has no version folder: a model folder holds model.onnx, or version folders named 1, 2, … each holding one'),
    );
  });
});
