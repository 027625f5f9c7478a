/**
 * deploy/monitoring/ against the real thing: the alert rules pass `promtool check rules` and
 * their promtool unit tests (which cover every alert), the Grafana dashboard parses, is valid
 * PromQL and uses only series the service exports; and a real Prometheus (Debian's
 * `prometheus`) scrapes a listening service every second, computes a p99 from its histogram,
 * evaluates the alert rules without errors and answers every dashboard query with data.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { parse as parseYaml } from 'yaml';
import { buildApp } from '../../src/app.js';
import { CIFAR_DIR, photo, REPO_ROOT, RESNET20_CONFIG, RESNET20_DIR, tempRepository, testConfig } from '../helpers.js';

const MONITORING = join(REPO_ROOT, 'deploy', 'monitoring');
const ALERTS = join(MONITORING, 'alerts.yaml');
const ALERT_TESTS = join(MONITORING, 'alerts.test.yaml');
const DASHBOARD = join(MONITORING, 'grafana-dashboard.json');
/** The job name the rules select (the base ServiceMonitor's); the test Prometheus uses it too. */
const JOB = 'resnet-serve';

/** True when `tool` runs; otherwise skips the test, or fails it in CI (`CI` set). */
function requireTool(t: TestContext, tool: string): boolean {
  const probe = spawnSync(tool, ['--version'], { stdio: 'ignore' });
  if ((probe.error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') return true;
  if (process.env.CI) assert.fail(`${tool} is not installed (Debian package \`prometheus\`); CI must install it`);
  t.skip(`${tool} is not installed (Debian package \`prometheus\`)`);
  return false;
}

function run(command: string, args: readonly string[], cwd = REPO_ROOT): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

const PROMQL_KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
  'atan2',
]);

/** The metric names a PromQL expression selects (functions, labels and keywords left out). */
function metricNames(expr: string): Set<string> {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  s = s.replace(/\{[^}]*\}/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)) {
    if (!PROMQL_KEYWORDS.has(m[1]!.toLowerCase())) names.add(m[1]!);
  }
  return names;
}

/** Every series name an exposition offers to queries: histograms as `_bucket`, `_sum`, `_count`. */
function queryableNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name! + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name! + suffix);
    else names.add(name!);
  }
  return names;
}

interface Panel {
  id?: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Array<{ refId: string; expr: string }>;
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: string | { query: string } }> };
}

const loadDashboard = async () => JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
const allPanels = (panels: readonly Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

interface Query {
  readonly where: string;
  readonly expr: string;
}

/** Every PromQL expression of the dashboard's panels. */
function panelQueries(dashboard: Dashboard): Query[] {
  return allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })));
}

/** The selectors of the dashboard's `label_values(selector, label)` variables. */
function variableSelectors(dashboard: Dashboard): Array<{ where: string; selector: string; label: string }> {
  return dashboard.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => {
      const query = typeof v.query === 'string' ? v.query : v.query.query;
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
      assert.ok(m, `variable ${v.name}: expected label_values(selector, label), got ${query}`);
      return { where: `variable ${v.name}`, selector: m[1]!, label: m[2]! };
    });
}

/** Grafana's variables as a Prometheus server would see them with "All" selected. */
function substitute(expr: string): string {
  const values: Record<string, string> = { __rate_interval: '1m', __interval: '15s', __range: '1h', job: JOB, instance: '.*', model: '.*', datasource: '' };
  return expr.replace(/\$\{?(\w+)\}?/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`Unknown dashboard variable $${name} in ${expr}`);
    return value;
  });
}

/** The rule file's alerts, by name, with their expressions. */
async function loadAlerts(): Promise<Array<{ alert: string; expr: string }>> {
  const doc = parseYaml(await readFile(ALERTS, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; expr: string }> }> };
  return doc.groups.flatMap((g) => g.rules).map((r) => ({ alert: r.alert ?? '', expr: r.expr }));
}

/** A real /metrics exposition (Prometheus text) of an app with process metrics and a loaded model. */
async function realExposition(t: TestContext): Promise<string> {
  const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const app = await buildApp(testConfig(repo), { defaultMetrics: true });
  t.after(() => app.close());
  await app.ready();
  await app.serving.registry.load();
  const res = await request(app.server).get('/metrics');
  assert.equal(res.status, 200);
  return res.text;
}

/** Names used by `queries` and not exported, as "where: name" lines. */
function unknownNames(queries: readonly Query[], exported: ReadonlySet<string>, allowed: ReadonlySet<string> = new Set()): string[] {
  const unknown: string[] = [];
  for (const q of queries) {
    const names = metricNames(q.expr);
    assert.ok(names.size > 0, `${q.where}: no metric name found in ${q.expr}`);
    for (const name of names) if (!exported.has(name) && !allowed.has(name)) unknown.push(`${q.where}: ${name}`);
  }
  return unknown;
}

const MISSING_HINT = 'inference_queue_capacity is exported only when createMetrics gets `queueMaxSize` (src/app.ts: `queueMaxSize: config.queueMaxSize`)';

describe('PromQL name extraction (used by the checks below)', () => {
  it('finds selected metrics, and not functions, labels, keywords or durations', () => {
    assert.deepEqual(
      metricNames('histogram_quantile(0.99, sum by (job, model, le) (rate(foo_bucket{job="x", le=~"1|2"}[5m] offset 1m)))'),
      new Set(['foo_bucket']),
    );
    assert.deepEqual(metricNames('a / on (job, instance) group_left (model) b > 0.75 and bool c'), new Set(['a', 'b', 'c']));
    assert.deepEqual(metricNames('up{job="x"} == 0 or (up unless on (job, instance) model_info)'), new Set(['up', 'model_info']));
    assert.deepEqual(metricNames('absent(up{job="resnet-serve"} == 1) * 1e3'), new Set(['up']));
    assert.deepEqual(metricNames('sum(rate(x_total{a="rate(y)"}[1m])) by (le)'), new Set(['x_total']));
  });
});

describe('alert rules', () => {
  it('pass promtool check rules', async (t) => {
    if (!requireTool(t, 'promtool')) return;
    const { code, output } = await run('promtool', ['check', 'rules', ALERTS]);
    assert.equal(code, 0, output);
    assert.match(output, /SUCCESS: 6 rules found/);
  });

  it('pass their promtool unit tests, which make every alert fire', async (t) => {
    if (!requireTool(t, 'promtool')) return;
    const { code, output } = await run('promtool', ['test', 'rules', ALERT_TESTS]);
    assert.equal(code, 0, output);
    assert.match(output, /SUCCESS/);

    const tests = parseYaml(await readFile(ALERT_TESTS, 'utf8')) as {
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
    };
    const fired = new Set(tests.tests.flatMap((tc) => (tc.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)));
    const quiet = new Set(tests.tests.flatMap((tc) => (tc.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length === 0).map((a) => a.alertname)));
    for (const { alert } of await loadAlerts()) {
      assert.ok(fired.has(alert), `alerts.test.yaml has no case in which ${alert} fires`);
      assert.ok(quiet.has(alert), `alerts.test.yaml has no case in which ${alert} stays quiet`);
    }
  });

  it('fail promtool test rules when a threshold is wrong (the tests are not vacuous)', async (t) => {
    if (!requireTool(t, 'promtool')) return;
    const dir = await mkdtemp(join(tmpdir(), 'resnet-serve-alerts-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const rules = await readFile(ALERTS, 'utf8');
    const loosened = rules.replace('outcome=~"error|timeout|rejected"', 'outcome=~"error|timeout|rejected|bad_input"').replace('> 0.75', '> 0.4');
    assert.notEqual(loosened, rules);
    await writeFile(join(dir, 'alerts.yaml'), loosened);
    await writeFile(join(dir, 'alerts.test.yaml'), await readFile(ALERT_TESTS, 'utf8'));
    const { code, output } = await run('promtool', ['test', 'rules', join(dir, 'alerts.test.yaml')]);
    assert.notEqual(code, 0, output);
    assert.match(output, /InferenceErrorRatioHigh/);
    assert.match(output, /InferenceQueueSaturated/);
  });

  it("use only series the service exports (and Prometheus' own `up`)", async (t) => {
    const exported = queryableNames(await realExposition(t));
    const alerts = await loadAlerts();
    assert.deepEqual(alerts.map((a) => a.alert).sort(), [
      'InferenceErrorRatioHigh',
      'InferenceLatencyP99High',
      'InferenceQueueSaturated',
      'NodeEventLoopLagHigh',
      'ResnetServeNotReady',
      'ResnetServeUnavailable',
    ]);
    const unknown = unknownNames(
      alerts.map((a) => ({ where: a.alert, expr: a.expr })),
      exported,
      new Set(['up']),
    );
    assert.deepEqual(unknown, [], `${unknown.join('\n')}\n(${MISSING_HINT})`);
  });
});

describe('Grafana dashboard', () => {
  it('parses, with unique panel ids, panels inside the grid and not overlapping', async () => {
    const dashboard = await loadDashboard();
    assert.equal(dashboard.uid, 'resnet-serve');
    const panels = allPanels(dashboard.panels);
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of panels) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits 24 columns`);
      if (p.type !== 'row') {
        assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, `${p.title} uses the datasource variable`);
        assert.ok((p.targets ?? []).length > 0, `${p.title} has queries`);
      }
      for (const q of panels) {
        if (p === q) continue;
        const a = p.gridPos;
        const b = q.gridPos;
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        assert.ok(!overlap, `${p.title} overlaps ${q.title}`);
      }
    }
  });

  it('shows throughput, outcomes, p50 and p99 per stage, batch sizes, queue depth, the response cache, event-loop lag, CPU and memory', async () => {
    const exprs = panelQueries(await loadDashboard()).map((q) => q.expr.replace(/\s+/g, ' '));
    const uses = (pattern: RegExp, what: string) =>
      assert.ok(
        exprs.some((e) => pattern.test(e)),
        `the dashboard shows ${what} (${pattern})`,
      );
    uses(/rate\(inference_images_total\{/, 'throughput in images/s');
    uses(/sum by \(outcome\) \(rate\(inference_requests_total\{/, 'requests by outcome');
    for (const stage of ['request', 'preprocess', 'queue', 'compute', 'postprocess']) {
      for (const q of ['0.5', '0.99'])
        uses(new RegExp(`histogram_quantile\\(${q}, .*inference_${stage}_duration_seconds_bucket\\{`), `p${Number(q) * 100} of ${stage}`);
    }
    uses(/inference_batch_size_bucket\{/, 'the batch size distribution');
    uses(/inference_queue_depth\{/, 'queue depth');
    uses(
      /rate\(inference_response_cache_hits_total\{.*\/ \(sum by \(model\) \(rate\(inference_response_cache_hits_total\{.*inference_response_cache_misses_total\{/,
      'the cache hit ratio',
    );
    uses(/rate\(inference_coalesced_images_total\{/, 'coalesced images');
    uses(/inference_response_cache_bytes\{/, "the cache's size");
    uses(/rate\(inference_response_cache_evictions_total\{/, 'cache evictions');
    uses(/nodejs_eventloop_lag_p99_seconds\{/, 'event-loop lag');
    uses(/rate\(process_cpu_seconds_total\{/, 'CPU');
    uses(/process_resident_memory_bytes\{/, 'memory');
  });

  it('queries only series the service exports', async (t) => {
    const exported = queryableNames(await realExposition(t));
    const dashboard = await loadDashboard();
    const queries = [...panelQueries(dashboard), ...variableSelectors(dashboard).map((v) => ({ where: v.where, expr: v.selector }))];
    const unknown = unknownNames(queries, exported);
    assert.deepEqual(unknown, [], `${unknown.join('\n')}\n(${MISSING_HINT})`);
  });

  it('is valid PromQL (checked by promtool as recording rules)', async (t) => {
    if (!requireTool(t, 'promtool')) return;
    const dashboard = await loadDashboard();
    const queries = [...panelQueries(dashboard), ...variableSelectors(dashboard).map((v) => ({ where: v.where, expr: v.selector }))];
    const dir = await mkdtemp(join(tmpdir(), 'resnet-serve-dashboard-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'dashboard-rules.yaml');
    // YAML is a superset of JSON.
    await writeFile(
      file,
      JSON.stringify({ groups: [{ name: 'dashboard', rules: queries.map((q, i) => ({ record: `dashboard_query_${i}`, expr: substitute(q.expr) })) }] }),
    );
    const { code, output } = await run('promtool', ['check', 'rules', file]);
    assert.equal(code, 0, output);
    assert.match(output, new RegExp(`SUCCESS: ${queries.length} rules found`));
  });
});

/** A port free right now on 127.0.0.1 (for Prometheus, which cannot report the one it picked). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `probe` every `intervalMs` until it returns a value, failing after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000, intervalMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

interface Prometheus {
  readonly url: string;
  query(expr: string): Promise<PromResult[]>;
  get<T>(path: string): Promise<T>;
}

/** Starts `prometheus` with `config`, in a temporary storage folder; stopped when the test ends. */
async function startPrometheus(t: TestContext, config: object): Promise<Prometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'resnet-serve-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, JSON.stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  });

  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(url + path);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  await waitFor(`Prometheus to be ready at ${url}`, async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}:\n${log}`);
    return (await fetch(`${url}/-/ready`)).ok ? true : undefined;
  }).catch((err: Error) => {
    throw new Error(`${err.message}\nprometheus log:\n${log}`);
  });
  return {
    url,
    get,
    async query(expr) {
      const data = await get<{ resultType: string; result: PromResult[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      assert.equal(data.resultType, 'vector', expr);
      return data.result;
    },
  };
}

/** The app, listening on a free loopback port, with a record of the Accept header of Prometheus' scrapes. */
async function listeningApp(t: TestContext): Promise<{ app: FastifyInstance; target: string; accepts: string[] }> {
  const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const app = await buildApp(testConfig(repo), { defaultMetrics: true });
  t.after(() => app.close());
  const accepts: string[] = [];
  app.addHook('onRequest', async (req) => {
    if (req.url === '/metrics' && req.headers['user-agent']?.startsWith('Prometheus/')) accepts.push(String(req.headers.accept));
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  await app.serving.registry.load();
  const { port } = app.server.address() as AddressInfo;
  return { app, target: `127.0.0.1:${port}`, accepts };
}

describe('a real Prometheus scraping the service', () => {
  it('computes a p99 from the scraped histogram, evaluates the alerts and answers every dashboard query', { timeout: 60_000 }, async (t) => {
    if (!requireTool(t, 'prometheus')) return;
    const started = Date.now();
    const { app, target, accepts } = await listeningApp(t);
    const prometheus = await startPrometheus(t, {
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: [ALERTS],
      scrape_configs: [{ job_name: JOB, static_configs: [{ targets: [target] }] }],
    });
    const selector = `job="${JOB}"`;

    // A first scrape with the model loaded: the zero-initialised histograms are the baseline
    // from which rate() sees the traffic below.
    await waitFor('the first scrape', async () => {
      const [sample] = await prometheus.query(`inference_request_duration_seconds_count{${selector}, outcome="ok"}`);
      return sample?.value[1] === '0' ? sample : undefined;
    });

    // Traffic: single and multi-image requests, some concurrent, and a bad image.
    const s = app.server;
    const images = await Promise.all(['airplane_0000.jpg', 'cat_0000.jpg', 'ship_0001.jpg', 'frog_0002.jpg'].map((n) => readFile(join(CIFAR_DIR, n))));
    let okImages = 0;
    for (let round = 0; round < 3; round++) {
      const singles = images.map((img) => request(s).post('/v1/predict').set('Content-Type', 'image/jpeg').send(img));
      let multi = request(s).post('/v1/models/resnet20:predict');
      images.forEach((img, i) => (multi = multi.attach(`f${i}`, img, `f${i}.jpg`)));
      for (const res of await Promise.all([...singles, multi])) assert.equal(res.status, 200, res.text);
      okImages += images.length * 2;
    }
    const bad = await request(s)
      .post('/v1/predict')
      .set('Content-Type', 'image/png')
      .send((await photo('chelsea.png')).subarray(0, 300));
    assert.equal(bad.status, 400, bad.text);

    // Prometheus has scraped the traffic once its count matches what was sent.
    await waitFor(`Prometheus to scrape ${okImages} images`, async () => {
      const [sample] = await prometheus.query(`sum(inference_request_duration_seconds_count{${selector}, outcome="ok"})`);
      return sample?.value[1] === String(okImages) ? sample : undefined;
    });
    const trafficScraped = Date.now();

    const [p99] = await prometheus.query(
      `histogram_quantile(0.99, sum by (le) (rate(inference_request_duration_seconds_bucket{${selector}, outcome="ok"}[1m])))`,
    );
    const seconds = Number(p99?.value[1]);
    t.diagnostic(`p99 of inference_request_duration_seconds (ok) per Prometheus: ${(seconds * 1000).toFixed(1)} ms`);
    assert.ok(Number.isFinite(seconds) && seconds > 0, `p99 ${p99?.value[1]}`);
    // It lies in the bucket that the service's own exposition says holds the 99th percentile.
    const exposition = (await request(s).get('/metrics')).text;
    const buckets = [
      ...exposition.matchAll(/^inference_request_duration_seconds_bucket\{le="([^"]+)",model="resnet20",version="1",outcome="ok",protocol="http"\} (\d+)$/gm),
    ].map((m) => ({
      le: m[1] === '+Inf' ? Infinity : Number(m[1]),
      count: Number(m[2]),
    }));
    const rank = 0.99 * okImages;
    const index = buckets.findIndex((b) => b.count >= rank);
    const lower = index === 0 ? 0 : buckets[index - 1]!.le;
    assert.ok(seconds > lower && seconds <= buckets[index]!.le, `p99 ${seconds} s within (${lower}, ${buckets[index]!.le}]`);

    // Scraped as OpenMetrics (what Prometheus asks for first), with no scrape error.
    assert.ok(accepts.length > 0 && accepts.every((a) => a.startsWith('application/openmetrics-text')), accepts[0]);
    const { activeTargets } = await prometheus.get<{ activeTargets: Array<{ health: string; lastError: string; labels: Record<string, string> }> }>(
      '/api/v1/targets',
    );
    assert.equal(activeTargets.length, 1);
    assert.equal(activeTargets[0]!.health, 'up');
    assert.equal(activeTargets[0]!.lastError, '');

    // The alert rules evaluate against the real series without errors, and none is even
    // pending, except that a busy test machine may lag the event loop.
    const rules = await waitFor('every alert rule to be evaluated on the scraped traffic', async () => {
      const { groups } = await prometheus.get<{
        groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; lastEvaluation: string; state: string }> }>;
      }>('/api/v1/rules');
      const all = groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((r) => Date.parse(r.lastEvaluation) >= trafficScraped) ? all : undefined;
    });
    assert.equal(rules.length, (await loadAlerts()).length);
    for (const rule of rules) {
      assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
      if (rule.name === 'NodeEventLoopLagHigh') assert.notEqual(rule.state, 'firing');
      else assert.equal(rule.state, 'inactive', `${rule.name} is ${rule.state}`);
    }

    // Every dashboard query runs and returns series; GC time appears only after a collection.
    // Series born with the traffic (the HTTP ones) need a second scrape before rate() has two
    // samples of them.
    const lastScrape = async () => Number((await prometheus.query(`timestamp(up{${selector}})`))[0]?.value[1]);
    const scrapedAt = await lastScrape();
    await waitFor('one more scrape', async () => ((await lastScrape()) > scrapedAt ? true : undefined));
    const dashboard = await loadDashboard();
    const mayBeEmpty = new Set(['GC time']);
    const titles = new Map(allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((target) => [target.expr, p.title] as const)));
    for (const q of panelQueries(dashboard)) {
      const result = await prometheus.query(substitute(q.expr));
      const hint = q.expr.includes('inference_queue_capacity') ? `\n(${MISSING_HINT})` : '';
      if (!mayBeEmpty.has(titles.get(q.expr)!)) assert.ok(result.length > 0, `${q.where} returns no series: ${substitute(q.expr)}${hint}`);
    }
    for (const v of variableSelectors(dashboard)) {
      const series = await prometheus.get<Array<Record<string, string>>>(`/api/v1/series?match[]=${encodeURIComponent(substitute(v.selector))}`);
      assert.ok(series.length > 0 && series.every((labels) => labels[v.label] !== undefined), `${v.where}: ${v.selector} has series with label ${v.label}`);
    }
    t.diagnostic(`took ${Date.now() - started} ms`);
  });
});
