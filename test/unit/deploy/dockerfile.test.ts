import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { serverConfig, serverEnvVars } from './helpers/app.js';
import { imageUser, parseDockerfile, readDockerfile, stageNamed, type Stage } from './helpers/dockerfile.js';
import { readRepoText, repoPath } from './helpers/repo.js';

/** Variables the images set for tools other than the server (node, npm, onnxruntime's installer, NVIDIA's runtime). */
const NOT_FOR_THE_SERVER = /^(NODE_ENV|ONNXRUNTIME_NODE_INSTALL|PATH|NVIDIA_VISIBLE_DEVICES|NVIDIA_DRIVER_CAPABILITIES|npm_config_[a-z_]+)$/;

const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
const packageJson = JSON.parse(readRepoText('package.json')) as { engines: { node: string }; license: string };
/** The newest Node line `engines` supports: the image runs it, and CI tests on it (.ci/run). */
const nodeMajor = String(Math.max(...[...packageJson.engines.node.matchAll(/\^(\d+)/g)].map((m) => Number(m[1]))));

function assertServesTheApp(stage: Stage, file: string): void {
  const { uid } = imageUser(file);
  assert.ok(uid > 0, `${file}: runs as root`);
  assert.deepEqual(stage.cmd, ['node', 'dist/src/server.js']);
  assert.ok(existsSync(repoPath('src', 'server.ts')), 'CMD runs dist/src/server.js, compiled from src/server.ts');
  assert.match(stage.entrypoint?.[0] ?? '', /\/tini$/, `${file}: tini is PID 1`);
  assert.deepEqual(stage.entrypoint?.slice(1), ['--']);
  const env = new Map([...stage.env].filter(([name]) => serverEnvVars.has(name)));
  const config = serverConfig(env);
  assert.ok(stage.exposed.includes(`${config.port}`) || stage.exposed.includes(`${config.port}/tcp`), `${file}: EXPOSE ${config.port}`);
  // The gRPC port (GRPC_PORT, on unless 0): KServe's 8081 by default, stated in the image.
  assert.equal(stage.env.get('GRPC_PORT'), String(config.grpcPort), `${file}: ENV GRPC_PORT states the gRPC port`);
  if (config.grpcPort !== 0) assert.ok(stage.exposed.includes(`${config.grpcPort}`) || stage.exposed.includes(`${config.grpcPort}/tcp`), `${file}: EXPOSE ${config.grpcPort} (GRPC_PORT)`);
  assert.equal(config.modelRepository, '/models');
  for (const label of ['title', 'description', 'version', 'revision', 'created', 'source', 'licenses']) {
    assert.ok(stage.labels.has(`org.opencontainers.image.${label}`), `${file}: OCI label ${label}`);
  }
  assert.equal(stage.labels.get('org.opencontainers.image.licenses'), packageJson.license);
}

function assertEnvNamesKnown(file: string): void {
  for (const stage of readDockerfile(file).stages) {
    const unknown = [...stage.env.keys()].filter((name) => !serverEnvVars.has(name) && !NOT_FOR_THE_SERVER.test(name));
    assert.deepEqual(unknown, [], `${file} stage ${stage.name ?? stage.from}: ENV the server does not read`);
  }
}

describe('Dockerfile (CPU)', () => {
  const dockerfile = readDockerfile('Dockerfile');

  it(`builds on the Node ${nodeMajor} (newest supported LTS) trixie slim image, the line CI also tests on`, () => {
    assert.equal(dockerfile.globalArgs.get('NODE_IMAGE'), `docker.io/library/node:${nodeMajor}-trixie-slim`);
    assert.match(readRepoText('.ci/run'), new RegExp(`^NODE_LTS=${nodeMajor}$`, 'm'), '.ci/run runs the suite on the image\'s Node line');
    for (const stage of dockerfile.stages) {
      assert.ok(stage.from === dockerfile.globalArgs.get('NODE_IMAGE') || dockerfile.stages.some((s) => s.name === stage.from), `stage ${stage.name} FROM ${stage.from}`);
    }
  });

  it('compiles in a build stage: npm ci, then tsc', () => {
    const build = runs(stageNamed(dockerfile, 'build')).join('\n');
    assert.match(build, /npm ci\b/);
    assert.match(build, /\btsc\b/);
  });

  it('installs production dependencies only, with the CUDA download skipped, in the image the app runs from', () => {
    const app = stageNamed(dockerfile, 'app');
    assert.ok(runs(app).some((r) => /npm ci\b.*--omit=dev/.test(r)));
    assert.equal(app.env.get('ONNXRUNTIME_NODE_INSTALL'), 'skip');
    assert.ok(app.instructions.some((i) => i.keyword === 'COPY' && /--from=build\s+\S*dist\/src/.test(i.args)), 'copies the compiled code from the build stage');
  });

  it('makes the default target the runtime image: non-root, tini, the server, EXPOSE, OCI labels', () => {
    const last = dockerfile.stages.at(-1) as Stage;
    assert.equal(last.name, 'runtime');
    assertServesTheApp(last, 'Dockerfile');
  });

  it('gives /models to the image user, so an empty writable /models can receive the default model', () => {
    const { uid, gid } = imageUser('Dockerfile');
    assert.ok(runs(stageNamed(dockerfile, 'app')).some((r) => r.includes(`chown ${uid}:${gid} /models`)));
  });

  it('can bake a model repository in, and then never builds a default model over it', () => {
    const baked = stageNamed(dockerfile, 'baked');
    assert.ok(baked.instructions.some((i) => i.keyword === 'COPY' && /\$\{MODEL_REPOSITORY_DIR\}\/?\s+\/models\/?$/.test(i.args)));
    assert.equal(baked.env.get('SEED_DEFAULT_MODEL'), 'false');
    assertServesTheApp(baked, 'Dockerfile');
    const bakedDefault = stageNamed(dockerfile, 'baked-default');
    assert.ok(runs(bakedDefault).some((r) => r.includes('assets/models/resnet20-cifar10') && r.includes('/models/')), 'bakes the shipped trained model');
    assert.equal(bakedDefault.user, stageNamed(dockerfile, 'app').user, 'baked-default runs as the image user again, not root');
    assert.equal(bakedDefault.env.get('SEED_DEFAULT_MODEL'), 'false');
  });

  it('sets no environment variable that the server does not read, apart from those of node, npm and onnxruntime', () => {
    assertEnvNamesKnown('Dockerfile');
  });
});

describe('Dockerfile.cuda', () => {
  const dockerfile = readDockerfile('Dockerfile.cuda');
  const last = dockerfile.stages.at(-1) as Stage;

  it('runs on an NVIDIA CUDA 12 runtime image with cuDNN (what onnxruntime 1.30 CUDA 12 needs)', () => {
    assert.match(dockerfile.globalArgs.get('CUDA_IMAGE') ?? '', /nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/);
    assert.equal(last.from, dockerfile.globalArgs.get('CUDA_IMAGE'));
  });

  it("installs onnxruntime-node's CUDA 12 libraries with production dependencies", () => {
    const deps = dockerfile.stages.find((s) => s.env.get('ONNXRUNTIME_NODE_INSTALL') === 'cuda12');
    assert.ok(deps, 'a stage with ONNXRUNTIME_NODE_INSTALL=cuda12');
    assert.ok(runs(deps).some((r) => /npm ci\b.*--omit=dev/.test(r) && r.includes('libonnxruntime_providers_cuda.so')));
    assert.ok(last.instructions.some((i) => i.keyword === 'COPY' && i.args.includes(`--from=${deps.name}`) && i.args.includes('node_modules')));
  });

  it('serves with EXECUTION_PROVIDER=cuda, the same way as the CPU image', () => {
    assert.equal(last.env.get('EXECUTION_PROVIDER'), 'cuda');
    assert.equal(serverConfig(new Map([...last.env].filter(([n]) => serverEnvVars.has(n)))).executionProvider, 'cuda');
    assertServesTheApp(last, 'Dockerfile.cuda');
  });

  it('sets no environment variable that the server does not read, apart from those of node, npm, onnxruntime and NVIDIA', () => {
    assertEnvNamesKnown('Dockerfile.cuda');
  });
});

describe('.dockerignore', () => {
  const patterns = readRepoText('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  it('keeps local builds, dependencies and version control out of the build context', () => {
    for (const path of ['node_modules', 'dist', '.git']) assert.ok(patterns.includes(path), path);
  });

  it('keeps what the Dockerfiles COPY', () => {
    const copied = ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'assets', 'models'];
    for (const path of copied) assert.ok(!patterns.includes(path) && !patterns.includes(`${path}/`) && !patterns.includes('*'), path);
  });
});

describe('parseDockerfile', () => {
  it('joins continued lines, skips comments, and inherits configuration from an earlier stage', () => {
    const parsed = parseDockerfile([
      'ARG BASE=example/base:1',
      'FROM ${BASE} AS one',
      'ENV A=1 \\',
      '    # a comment inside the continuation',
      '    B="two words"',
      'USER 10:20',
      'FROM one AS two',
      'ENV C=3',
      'CMD ["run"]',
    ].join('\n'));
    assert.equal(parsed.stages[0]?.from, 'example/base:1');
    const two = stageNamed(parsed, 'two');
    assert.deepEqual([...two.env], [['A', '1'], ['B', 'two words'], ['C', '3']]);
    assert.equal(two.user, '10:20');
    assert.deepEqual(two.cmd, ['run']);
  });
});
