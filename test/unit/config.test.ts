import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, ENV_VARS, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('has documented defaults and is frozen', () => {
    const c = loadConfig({}, { availableCpus: 3 });
    assert.equal(c.port, 8080);
    assert.equal(c.modelRepository, './models');
    assert.equal(c.batchMaxSize, undefined, 'left to the execution provider in use');
    assert.equal(c.batchMaxDelayMs, 0);
    assert.equal(c.inferenceWorkers, 1);
    assert.equal(c.intraOpThreads, 3, 'defaults to the CPUs this process may use');
    assert.equal(c.inferenceNice, 10);
    assert.equal(loadConfig({ INFERENCE_NICE: '0' }, { availableCpus: 3 }).inferenceNice, 0);
    assert.equal(c.decodeNice, 10);
    assert.equal(loadConfig({ DECODE_NICE: '0' }, { availableCpus: 3 }).decodeNice, 0);
    assert.equal(loadConfig({}, { availableCpus: 3 }).decodeThreads, 1);
    assert.equal(loadConfig({ DECODE_THREADS: '0' }, { availableCpus: 3 }).decodeThreads, 0);
    assert.throws(() => loadConfig({ DECODE_THREADS: '-1' }, { availableCpus: 3 }), /`DECODE_THREADS`/);
    assert.throws(() => loadConfig({ DECODE_NICE: '20' }, { availableCpus: 3 }), /`DECODE_NICE` to be an integer from 0 to 19, got `20`/);
    assert.equal(c.uploadMaxBytes, 10 * 1024 * 1024);
    assert.equal(c.maxImagesPerRequest, 32);
    assert.equal(c.maxImagePixels, 40_000_000);
    assert.equal(c.executionProvider, 'cpu');
    assert.deepEqual(c.apiKeys, []);
    assert.equal(c.responseCacheMaxBytes, 0, 'the response cache is off');
    assert.equal(loadConfig({ RESPONSE_CACHE_MAX_BYTES: '1048576' }, { availableCpus: 3 }).responseCacheMaxBytes, 1048576);
    assert.ok(Object.isFrozen(c));
  });

  it('seeds the shipped default model unless SEED_DEFAULT_MODEL (or its former name BUILD_DEFAULT_MODEL) is false', () => {
    const seed = (env: Record<string, string>) => loadConfig(env, { availableCpus: 2 }).seedDefaultModel;
    assert.equal(seed({}), true);
    assert.equal(seed({ SEED_DEFAULT_MODEL: 'false' }), false);
    assert.equal(seed({ BUILD_DEFAULT_MODEL: 'false' }), false, 'the former name still works');
    assert.equal(seed({ SEED_DEFAULT_MODEL: 'false', BUILD_DEFAULT_MODEL: 'no' }), false);
    assert.equal(seed({ SEED_DEFAULT_MODEL: 'true', BUILD_DEFAULT_MODEL: '' }), true);
  });

  it('reads the model control mode, MODEL_LOAD and the poll interval', () => {
    const c = loadConfig({}, { availableCpus: 1 });
    assert.equal(c.modelControlMode, 'none');
    assert.deepEqual(c.modelLoad, []);
    assert.equal(c.modelPollIntervalS, 15);
    const explicit = loadConfig({ MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: ' a, b ,' }, { availableCpus: 1 });
    assert.deepEqual(explicit.modelLoad, ['a', 'b']);
    assert.equal(loadConfig({ MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: '*' }, { availableCpus: 1 }).modelLoad, '*');
    assert.throws(() => loadConfig({ MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: '*,a' }, { availableCpus: 1 }), /`MODEL_LOAD` to be `\*` alone/);
    assert.throws(() => loadConfig({ MODEL_CONTROL_MODE: 'poll', MODEL_LOAD: 'a' }, { availableCpus: 1 }), /applies to `MODEL_CONTROL_MODE=explicit` only/);
    assert.throws(
      () => loadConfig({ MODEL_CONTROL_MODE: 'push' }, { availableCpus: 1 }),
      /`MODEL_CONTROL_MODE` to be one of `none`, `explicit`, `poll`, got `push`/,
    );
    assert.throws(() => loadConfig({ MODEL_POLL_INTERVAL_S: '0' }, { availableCpus: 1 }), /`MODEL_POLL_INTERVAL_S`/);
  });

  it('takes BATCH_MAX_SIZE when set', () => {
    assert.equal(loadConfig({ EXECUTION_PROVIDER: 'cuda', BATCH_MAX_SIZE: '4' }, { availableCpus: 2 }).batchMaxSize, 4);
  });

  it('fails with a message naming the variable and the value', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ PORT: 'eighty' }, /Expected `PORT` to be an integer from 0 to 65535, got `eighty`/],
      [{ BATCH_MAX_SIZE: '0' }, /Expected `BATCH_MAX_SIZE` to be an integer from 1 to 1024, got `0`/],
      [{ QUEUE_MAX_SIZE: '1.5' }, /`QUEUE_MAX_SIZE`/],
      [{ EXECUTION_PROVIDER: 'tpu' }, /Expected `EXECUTION_PROVIDER` to be one of `cpu`, `cuda`, `auto`, got `tpu`/],
      [{ SEED_DEFAULT_MODEL: 'maybe' }, /`SEED_DEFAULT_MODEL` to be true or false/],
      [{ BUILD_DEFAULT_MODEL: 'maybe' }, /`BUILD_DEFAULT_MODEL` to be true or false/],
      [{ SEED_DEFAULT_MODEL: 'true', BUILD_DEFAULT_MODEL: 'false' }, /both set and disagree/],
      [{ METRICS_PORT: '8080' }, /`METRICS_PORT` to differ from `PORT`/],
      [{ MAX_IMAGES_PER_REQUEST: '200' }, /`MAX_IMAGES_PER_REQUEST` \(200\) to be at most `QUEUE_MAX_SIZE` \(128\)/],
      [{ HTTP_HEADERS_TIMEOUT_MS: '70000' }, /HTTP_HEADERS_TIMEOUT_MS/],
      [{ INFERENCE_NICE: '20' }, /Expected `INFERENCE_NICE` to be an integer from 0 to 19, got `20`/],
      [{ RESPONSE_CACHE_MAX_BYTES: '-1' }, /Expected `RESPONSE_CACHE_MAX_BYTES` to be an integer from 0 and up, got `-1`/],
      [{ RESPONSE_CACHE_MAX_BYTES: '1GB' }, /Expected `RESPONSE_CACHE_MAX_BYTES` to be an integer from 0 and up, got `1GB`/],
      [
        { RESPONSE_CACHE_MAX_BYTES: '100' },
        /Expected `RESPONSE_CACHE_MAX_BYTES` to be 0 \(off\) or at least 1024 bytes \(a smaller cache could hold no entry\), got `100`/,
      ],
      [{ TRUST_PROXY: 'true' }, /`TRUST_PROXY` to be false or a comma-separated list .* \(trusting any peer would let a client/],
      [{ TRUST_PROXY: '1' }, /`TRUST_PROXY`.*\(trusting any peer/],
      [{ TRUST_PROXY: '10.0.0.1, 0.0.0.0/0' }, /`TRUST_PROXY`.*\(trusting any peer/],
      [{ TRUST_PROXY: '::/0' }, /`TRUST_PROXY`/],
      [{ TRUST_PROXY: '10.0.0.0/33' }, /`TRUST_PROXY`/],
      [{ TRUST_PROXY: 'ingress.local' }, /`TRUST_PROXY`/],
      [{ TRUST_PROXY: '10.0.0.1/8/2' }, /`TRUST_PROXY`/],
    ];
    for (const [env, message] of cases) {
      assert.throws(
        () => loadConfig(env, { availableCpus: 2 }),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
        JSON.stringify(env),
      );
    }
  });

  it('reads TRUST_PROXY as off or trusted addresses and ranges', () => {
    const read = (v: string | undefined) => loadConfig({ TRUST_PROXY: v }, { availableCpus: 2 }).trustProxy;
    assert.equal(read(undefined), false);
    assert.equal(read('false'), false);
    assert.deepEqual(read('10.0.0.0/8, 127.0.0.1,fd00::/48 ,::1'), ['10.0.0.0/8', '127.0.0.1', 'fd00::/48', '::1']);
    assert.deepEqual(read('::ffff:10.0.0.0/104'), ['::ffff:10.0.0.0/104'], 'an IPv4-mapped /8');
    assert.deepEqual(read('::ffff:10.0.0.1, fe80::1%eth0'), ['::ffff:10.0.0.1', 'fe80::1%eth0']);
    assert.deepEqual(read('2001:db8::/32'), ['2001:db8::/32'], 'exactly the IPv6 bound');
    // Loopback peers are the server's own namespace (a sidecar), so they do not count towards the bound.
    assert.deepEqual(read('10.0.0.0/8, 127.0.0.0/8, ::ffff:127.0.0.6, ::1'), ['10.0.0.0/8', '127.0.0.0/8', '::ffff:127.0.0.6', '::1']);
  });

  it('refuses TRUST_PROXY lists that cover more than a /8 of IPv4 or a /32 of IPv6, naming entries, count and bound', () => {
    const refusal = (v: string) => {
      try {
        loadConfig({ TRUST_PROXY: v }, { availableCpus: 2 });
      } catch (err) {
        assert.ok(err instanceof ConfigError, v);
        return err.message;
      }
      assert.fail(`TRUST_PROXY=${v} was accepted`);
    };
    const ipv4Bound = /to cover at most 16777216 IPv4 addresses \(a \/8's worth: 10\.0\.0\.0\/8 is the widest private block/;
    // Two halves are every IPv4 peer, like `true`.
    const halves = refusal('0.0.0.0/1,128.0.0.0/1');
    assert.match(halves, ipv4Bound);
    assert.match(halves, /got 4294967296 from `0\.0\.0\.0\/1` \(2147483648\), `128\.0\.0\.0\/1` \(2147483648\)/);
    assert.match(halves, /choose the address it is rate-limited as/);
    // Many small ranges add up: 256 /16s are a /8's worth (accepted), one address more is not.
    const slash16s = Array.from({ length: 256 }, (_, i) => `10.${i}.0.0/16`);
    assert.equal((loadConfig({ TRUST_PROXY: slash16s.join(',') }, { availableCpus: 2 }).trustProxy as readonly string[]).length, 256);
    const many = refusal([...slash16s, '192.168.0.1'].join(','));
    assert.match(many, ipv4Bound);
    assert.match(many, /got 16777217 from `10\.0\.0\.0\/16` \(65536\), .*, and 249 more:/, 'the eight largest entries, then a count');
    // The private blocks together are everyone inside the network, not the proxies: refused.
    assert.match(refusal('10.0.0.0/8,172.16.0.0/12'), /got 17825792 from `10\.0\.0\.0\/8` \(16777216\), `172\.16\.0\.0\/12` \(1048576\)/);
    // IPv4-mapped ranges count as the IPv4 addresses they hold (proxy-addr matches IPv4 peers).
    assert.match(refusal('::ffff:0:0/96'), /IPv4 addresses .* got 4294967296 from `::ffff:0:0\/96` \(4294967296 as IPv4-mapped addresses\)/);
    assert.match(refusal('::ffff:10.0.0.0/103'), /got 33554432 from `::ffff:10\.0\.0\.0\/103`/);
    assert.match(
      refusal('10.0.0.0/8, ::ffff:192.168.0.0/112'),
      /got 16842752 from `10\.0\.0\.0\/8` \(16777216\), `::ffff:192\.168\.0\.0\/112` \(65536 as IPv4-mapped/,
    );
    assert.match(refusal('::/64'), /got 4294967296 from `::\/64` \(4294967296 as IPv4-mapped addresses\)/, 'holds the whole mapped block');
    // IPv6: a /32's worth at most.
    const ipv6 = refusal('2001:db8::/31');
    assert.match(ipv6, /to cover at most 2\^96 IPv6 addresses \(a \/32's worth: an RIR allocates a \/32 to a whole organisation/);
    assert.match(ipv6, /got 2\^97 from `2001:db8::\/31` \(2\^97\)/);
    assert.match(refusal('2001:db8::/32, 2001:db9::/48'), /got more than 2\^96 from `2001:db8::\/32` \(2\^96\), `2001:db9::\/48` \(2\^80\)/);
    assert.match(refusal('fd00::/8'), /got 2\^120/);
    assert.deepEqual(loadConfig({ TRUST_PROXY: '2001:db8::/48' }, { availableCpus: 2 }).trustProxy, ['2001:db8::/48']);
    assert.deepEqual(loadConfig({ TRUST_PROXY: '10.0.0.0/8' }, { availableCpus: 2 }).trustProxy, ['10.0.0.0/8']);
  });

  it('refuses TRUST_PROXY netmasks, which it does not parse, and says to write a prefix length', () => {
    assert.throws(
      () => loadConfig({ TRUST_PROXY: '10.0.0.0/255.0.0.0' }, { availableCpus: 2 }),
      /got `10\.0\.0\.0\/255\.0\.0\.0` \(`10\.0\.0\.0\/255\.0\.0\.0` has a netmask: write the prefix length, as in `10\.0\.0\.0\/8`\)/,
    );
  });

  it('reads API keys from API_KEYS and API_KEYS_FILE', () => {
    const c = loadConfig({ API_KEYS: 'a, b', API_KEYS_FILE: '/keys' }, { availableCpus: 2, readFile: () => 'c\n\nd\n' });
    assert.deepEqual(c.apiKeys, ['a', 'b', 'c', 'd']);
    assert.throws(
      () =>
        loadConfig(
          { API_KEYS_FILE: '/missing' },
          {
            availableCpus: 2,
            readFile: () => {
              throw new Error('ENOENT');
            },
          },
        ),
      /Could not read `API_KEYS_FILE` \(\/missing\): ENOENT/,
    );
  });

  it('lists every variable it reads in ENV_VARS', async () => {
    const { readFile } = await import('node:fs/promises');
    const { REPO_ROOT } = await import('../helpers.js');
    const source = await readFile(`${REPO_ROOT}/src/config.ts`, 'utf8');
    const read = new Set([...source.matchAll(/(?:env,\s*|env\.)'?([A-Z][A-Z0-9_]+)'?/g)].map((m) => m[1]!));
    for (const name of read) assert.ok((ENV_VARS as readonly string[]).includes(name), `${name} is read but not in ENV_VARS`);
    const readme = await readFile(`${REPO_ROOT}/README.md`, 'utf8');
    for (const name of ENV_VARS) assert.match(readme, new RegExp('\\| `' + name + '` \\|'), `${name} is missing from README's configuration table`);
  });
});
