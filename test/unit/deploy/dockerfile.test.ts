import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { serverConfig, serverEnvVars } from './helpers/app.js';
import { copiesOf, imageUser, parseDockerfile, readDockerfile, stageNamed, workdirOf, type Dockerfile, type Stage } from './helpers/dockerfile.js';
import { isIgnored, parseDockerignore, readDockerignore } from './helpers/dockerignore.js';
import { readRepoText, repoPath } from './helpers/repo.js';

/** Variables the images set for tools other than the server (node, npm, onnxruntime's installer, NVIDIA's runtime, glibc's malloc). */
const NOT_FOR_THE_SERVER =
  /^(NODE_ENV|ONNXRUNTIME_NODE_INSTALL|PATH|NVIDIA_VISIBLE_DEVICES|NVIDIA_DRIVER_CAPABILITIES|MALLOC_MMAP_THRESHOLD_|npm_config_[a-z_]+)$/;

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
  if (config.grpcPort !== 0)
    assert.ok(
      stage.exposed.includes(`${config.grpcPort}`) || stage.exposed.includes(`${config.grpcPort}/tcp`),
      `${file}: EXPOSE ${config.grpcPort} (GRPC_PORT)`,
    );
  assert.equal(config.modelRepository, '/models');
  for (const label of ['title', 'description', 'version', 'revision', 'created', 'source', 'licenses']) {
    assert.ok(stage.labels.has(`org.opencontainers.image.${label}`), `${file}: OCI label ${label}`);
  }
  assert.equal(stage.labels.get('org.opencontainers.image.licenses'), packageJson.license);
}

/** Image path -> build-context path of everything a stage (and the stages it is built from) copies from the context. */
function placedFromContext(dockerfile: Dockerfile, stage: Stage): Map<string, string> {
  const placed = new Map<string, string>();
  for (const copy of copiesOf(dockerfile, stage)) {
    if (copy.from !== undefined) continue;
    for (const source of copy.sources) {
      const name = source.replace(/\/+$/, '');
      placed.set(copy.intoFolder ? `${copy.destination}/${name.split('/').at(-1)}` : copy.destination, name);
    }
  }
  return placed;
}

/**
 * The server finds its project root as the nearest folder above dist/src holding package.json and
 * assets/ (src/system/project-root.ts) and reads openapi.yaml there (GET /openapi.yaml,
 * /openapi.json, /docs); the gRPC server loads its protos from dist/src/grpc/../../../proto. All
 * of them must land in WORKDIR, where dist/src is; the page, in dist/web beside it.
 */
function assertProjectRootInWorkdir(dockerfile: Dockerfile, stage: Stage, file: string): void {
  const workdir = workdirOf(dockerfile, stage);
  const placed = placedFromContext(dockerfile, stage);
  for (const name of ['package.json', 'assets', 'openapi.yaml', 'proto']) {
    assert.equal(placed.get(`${workdir}/${name}`), name, `${file} stage ${stage.name}: COPY ${name} into WORKDIR ${workdir}`);
  }
  const compiled = copiesOf(dockerfile, stage)
    .filter((c) => c.from !== undefined)
    .map((c) => c.destination);
  assert.ok(compiled.includes(`${workdir}/dist/src`), `${file} stage ${stage.name}: the compiled server goes to ${workdir}/dist/src`);
  // src/http/routes/page.ts serves GET / from dist/web, beside dist/src.
  assert.ok(compiled.includes(`${workdir}/dist/web`), `${file} stage ${stage.name}: the built page goes to ${workdir}/dist/web`);
  assert.equal(stage.cmd?.[1], 'dist/src/server.js', `${file} stage ${stage.name}: CMD runs the server relative to WORKDIR`);
  for (const image of placed.keys()) {
    assert.ok(!image.startsWith(`${workdir}/dist/`), `${file} stage ${stage.name}: ${image} would stand between dist/src and the project root`);
  }
}

/** Every file under a build-context path (the path itself when it is a file). */
function contextFiles(path: string): string[] {
  const full = repoPath(path);
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full, { recursive: true, encoding: 'utf8' })
    .filter((rel) => statSync(repoPath(path, rel)).isFile())
    .map((rel) => `${path}/${rel.split('\\').join('/')}`);
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
    assert.match(readRepoText('.ci/run'), new RegExp(`^NODE_LTS=${nodeMajor}$`, 'm'), ".ci/run runs the suite on the image's Node line");
    for (const stage of dockerfile.stages) {
      assert.ok(
        stage.from === dockerfile.globalArgs.get('NODE_IMAGE') || dockerfile.stages.some((s) => s.name === stage.from),
        `stage ${stage.name} FROM ${stage.from}`,
      );
    }
  });

  it('compiles in a build stage: npm ci, then tsc, for the server and for the page', () => {
    const build = runs(stageNamed(dockerfile, 'build')).join('\n');
    assert.match(build, /npm ci\b/);
    assert.match(build, /\btsc\b/);
    assert.match(build, /\btsc -p tsconfig\.web\.json\b/);
    assert.match(build, /\bcp web\/\*\.html web\/\*\.css dist\/web\//);
  });

  it('installs production dependencies only, with the CUDA download skipped, in the image the app runs from', () => {
    const app = stageNamed(dockerfile, 'app');
    assert.ok(runs(app).some((r) => /npm ci\b.*--omit=dev/.test(r)));
    assert.equal(app.env.get('ONNXRUNTIME_NODE_INSTALL'), 'skip');
    assert.ok(
      app.instructions.some((i) => i.keyword === 'COPY' && /--from=build\s+\S*dist\/src/.test(i.args)),
      'copies the compiled code from the build stage',
    );
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

  it('can bake a model repository in, and then never copies the default model beside it', () => {
    const baked = stageNamed(dockerfile, 'baked');
    assert.ok(baked.instructions.some((i) => i.keyword === 'COPY' && /\$\{MODEL_REPOSITORY_DIR\}\/?\s+\/models\/?$/.test(i.args)));
    assert.equal(baked.env.get('SEED_DEFAULT_MODEL'), 'false');
    assertServesTheApp(baked, 'Dockerfile');
    const bakedDefault = stageNamed(dockerfile, 'baked-default');
    assert.ok(
      runs(bakedDefault).some((r) => r.includes('assets/models/resnet20-cifar10') && r.includes('/models/')),
      'bakes the shipped trained model',
    );
    assert.equal(bakedDefault.user, stageNamed(dockerfile, 'app').user, 'baked-default runs as the image user again, not root');
    assert.equal(bakedDefault.env.get('SEED_DEFAULT_MODEL'), 'false');
  });

  it('sets no environment variable that the server does not read, apart from those of node, npm and onnxruntime', () => {
    assertEnvNamesKnown('Dockerfile');
  });

  it('puts package.json, assets/, openapi.yaml and proto/ in WORKDIR beside dist/src and the page, where the server looks for them, in every target', () => {
    for (const name of ['runtime', 'baked', 'baked-default']) assertProjectRootInWorkdir(dockerfile, stageNamed(dockerfile, name), 'Dockerfile');
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

  it('gives the node binary copied from the node image the libatomic1 it links (Node 26 on), and runs it once while building', () => {
    const lines = last.instructions.map((i) => `${i.keyword} ${i.args}`);
    const copyNode = lines.findIndex((l) => /^COPY --from=\S+ \/usr\/local\/bin\/node /.test(l));
    assert.ok(copyNode >= 0, 'copies node from the node image');
    assert.ok(
      lines.slice(0, copyNode).some((l) => /^RUN .*apt-get install\b.*\blibatomic1\b/.test(l)),
      'installs libatomic1 before',
    );
    assert.ok(
      lines.slice(copyNode + 1).some((l) => /^RUN node --version$/.test(l)),
      'runs node --version after',
    );
  });

  it('serves with EXECUTION_PROVIDER=cuda, the same way as the CPU image', () => {
    assert.equal(last.env.get('EXECUTION_PROVIDER'), 'cuda');
    assert.equal(serverConfig(new Map([...last.env].filter(([n]) => serverEnvVars.has(n)))).executionProvider, 'cuda');
    assertServesTheApp(last, 'Dockerfile.cuda');
  });

  it('sets no environment variable that the server does not read, apart from those of node, npm, onnxruntime and NVIDIA', () => {
    assertEnvNamesKnown('Dockerfile.cuda');
  });

  it('puts package.json, assets/, openapi.yaml and proto/ in WORKDIR beside dist/src and the page, as the CPU image does', () => {
    assertProjectRootInWorkdir(dockerfile, last, 'Dockerfile.cuda');
  });
});

describe('.dockerignore', () => {
  const patterns = readDockerignore();

  it('keeps local builds, dependencies, version control, secrets and the tests out of the build context', () => {
    for (const path of [
      'node_modules/fastify/package.json',
      'dist/src/server.js',
      '.git/HEAD',
      '.env',
      'tls/server.key',
      'test/unit/config.test.ts',
      'README.md',
    ]) {
      assert.ok(isIgnored(patterns, path), `${path} is sent to the builder`);
    }
  });

  it("keeps every file the Dockerfiles COPY from the build context (openapi.yaml and the shipped model's README included)", () => {
    const sources = new Set<string>();
    for (const file of ['Dockerfile', 'Dockerfile.cuda']) {
      const dockerfile = readDockerfile(file);
      for (const stage of dockerfile.stages) {
        for (const copy of copiesOf(dockerfile, stage)) if (copy.from === undefined) for (const s of copy.sources) sources.add(s.replace(/\/+$/, ''));
      }
    }
    for (const name of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.web.json', 'src', 'web', 'assets', 'openapi.yaml', 'proto', 'models']) {
      assert.ok(sources.has(name), `the Dockerfiles COPY ${name}`);
    }
    for (const source of sources) {
      // models/ is the user's own repository for the `baked` target; the checkout has none.
      const files = existsSync(repoPath(source)) ? contextFiles(source) : [`${source}/mymodel/model.onnx`, `${source}/mymodel/README.md`];
      for (const path of files) assert.ok(!isIgnored(patterns, path), `COPY ${source}: .dockerignore leaves ${path} out`);
    }
  });
});

describe('isIgnored (.dockerignore semantics)', () => {
  it('matches as the builders do: * within a folder, ** across folders, a folder with its contents, the last match deciding', () => {
    const patterns = parseDockerignore(['# comment', '*.md', 'docs', '**/*.log', 'build/', '!docs/keep.md', '/secret'].join('\n'));
    const cases: [string, boolean][] = [
      ['README.md', true],
      ['assets/README.md', false],
      ['docs/a/b.txt', true],
      ['docs/keep.md', false],
      ['x.log', true],
      ['a/b/x.log', true],
      ['build/out.js', true],
      ['secret', true],
      ['src/secret', false],
      ['openapi.yaml', false],
    ];
    for (const [path, ignored] of cases) assert.equal(isIgnored(patterns, path), ignored, path);
  });
});

describe('parseDockerfile', () => {
  it('joins continued lines, skips comments, and inherits configuration from an earlier stage', () => {
    const parsed = parseDockerfile(
      [
        'ARG BASE=example/base:1',
        'FROM ${BASE} AS one',
        'ENV A=1 \\',
        '    # a comment inside the continuation',
        '    B="two words"',
        'USER 10:20',
        'FROM one AS two',
        'ENV C=3',
        'CMD ["run"]',
      ].join('\n'),
    );
    assert.equal(parsed.stages[0]?.from, 'example/base:1');
    const two = stageNamed(parsed, 'two');
    assert.deepEqual(
      [...two.env],
      [
        ['A', '1'],
        ['B', 'two words'],
        ['C', '3'],
      ],
    );
    assert.equal(two.user, '10:20');
    assert.deepEqual(two.cmd, ['run']);
  });
});
