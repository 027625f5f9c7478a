/**
 * The page at `/`: pick a served model, give it images (chosen, dropped or pasted), and see each
 * image's top classes, the server's `Server-Timing` breakdown, or the catalog error in words.
 * It speaks the public API only (`GET /v1/models`, `GET /v1/models/{name}`,
 * `POST /v1/models/{name}:predict`), one request per image, so what it shows is what any client
 * gets. The API key lives in one variable: never in storage, a cookie or the URL.
 */

/** `GET /v1/models/{name}`, the fields the page shows (openapi.yaml's ModelMetadataV1). */
interface ModelMetadata {
  readonly name: string;
  readonly version: string;
  readonly ready: boolean;
  readonly execution_provider: string;
  readonly trained: boolean | null;
  readonly description: string | null;
  readonly preprocess: {
    readonly resize: number;
    readonly crop: number;
    readonly mean: readonly number[];
    readonly std: readonly number[];
    readonly scale: number;
    readonly channels: string;
    readonly layout: string;
    /** How a phone photo is decoded (docs/models.md, "Shrink-on-load"); absent from older servers. */
    readonly decode?: 'fast' | 'exact';
  };
  readonly output_kind: string;
  readonly labels: number;
  readonly classes: number;
  readonly max_batch_size: number;
}

interface ClassScore {
  readonly label: string;
  readonly index: number;
  readonly score: number;
}

interface PredictResponse {
  readonly model_name: string;
  readonly predictions: ReadonlyArray<ClassScore & { readonly top_k: readonly ClassScore[] }>;
}

/** A refusal: the server's catalog error (`{"error", "code"}`), or status 0 when no answer came. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter: string | null = null,
  ) {
    super(message);
  }
}

/** Images classified at once: enough to show batching, few enough not to fill the queue. */
const PARALLEL_REQUESTS = 4;

function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`index.html has no #${id}`);
  return found as T;
}

const ui = {
  model: byId<HTMLSelectElement>('model'),
  topK: byId<HTMLInputElement>('top-k'),
  modelStatus: byId('model-status'),
  untrained: byId('untrained'),
  modelInfo: byId('model-info'),
  keyForm: byId<HTMLFormElement>('key-form'),
  key: byId<HTMLInputElement>('key'),
  keyStatus: byId('key-status'),
  files: byId<HTMLInputElement>('files'),
  drop: byId<HTMLButtonElement>('drop'),
  clear: byId<HTMLButtonElement>('clear'),
  results: byId<HTMLOListElement>('results'),
};

/** The API key: in this variable only. */
let apiKey = '';
let model: ModelMetadata | undefined;
const previews: string[] = [];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className !== undefined) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function authorized(headers: Record<string, string> = {}): Headers {
  const h = new Headers(headers);
  if (apiKey !== '') h.set('Authorization', `Bearer ${apiKey}`);
  return h;
}

async function refusal(response: Response): Promise<ApiError> {
  let body: { error?: unknown; code?: unknown } = {};
  try {
    body = (await response.json()) as typeof body;
  } catch {
    // Not the catalog's JSON (a proxy's page, say): the status says enough.
  }
  const message = typeof body.error === 'string' ? body.error : response.statusText;
  return new ApiError(response.status, typeof body.code === 'string' ? body.code : '', message, response.headers.get('Retry-After'));
}

/** fetch, with every failure as an ApiError. */
async function call(url: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, headers: authorized(init.headers as Record<string, string> | undefined), cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, '', err instanceof Error ? err.message : String(err));
  }
  if (!response.ok) throw await refusal(response);
  return response;
}

/** What a refusal means for the person at the page, then the server's own words. */
function explain(e: ApiError): { title: string; detail: string } {
  const wait = e.retryAfter === null ? '' : ` Try again in ${e.retryAfter} s.`;
  const titles: Record<number, string> = {
    0: 'No answer from the server.',
    400: 'The server could not use this file.',
    401: apiKey === '' ? 'This server needs an API key: enter it under “API key”.' : 'The API key was refused: check it and press “Use key”.',
    404: 'Not found: reload the page to see the models served now.',
    413: 'Too large for this server.',
    415: 'Not an image type the server takes (JPEG, PNG, WebP, GIF, TIFF, AVIF).',
    429: `Too many requests.${wait}`,
    503: `The server is busy or not ready.${wait}`,
    504: 'The request waited too long for inference.',
  };
  const title = titles[e.status] ?? (e.status >= 500 ? 'The server failed.' : 'The request was refused.');
  const detail =
    e.status === 0
      ? `The connection ended before an answer (${e.message}). A very large file may have been refused and its upload cut off.`
      : `${e.status}${e.code === '' ? '' : ` ${e.code}`}: ${e.message}`;
  return { title, detail };
}

function showError(target: HTMLElement, e: unknown): void {
  const error = e instanceof ApiError ? e : new ApiError(0, '', String(e));
  const { title, detail } = explain(error);
  const box = el('div', 'error');
  box.append(el('strong', undefined, title), ' ', el('span', 'detail', detail));
  target.replaceChildren(box);
}

function setStatus(target: HTMLElement, text: string): void {
  target.replaceChildren(text);
}

function updateDrop(): void {
  ui.drop.disabled = model === undefined;
}

async function loadModels(): Promise<void> {
  setStatus(ui.modelStatus, 'Loading the models…');
  const previous = ui.model.value;
  try {
    const { models } = (await (await call('/v1/models')).json()) as { models: string[] };
    setStatus(ui.keyStatus, apiKey === '' ? '' : 'Key accepted.');
    ui.model.replaceChildren(...models.map((name) => el('option', undefined, name)));
    ui.model.disabled = models.length === 0;
    if (models.includes(previous)) ui.model.value = previous;
    if (models.length === 0) {
      setStatus(ui.modelStatus, 'This server serves no model.');
      showModel(undefined);
      return;
    }
    await selectModel(ui.model.value);
  } catch (e) {
    ui.model.replaceChildren();
    ui.model.disabled = true;
    showModel(undefined);
    if (e instanceof ApiError && e.status === 401) {
      showError(ui.keyStatus, e);
      setStatus(ui.modelStatus, 'The models are listed once a valid key is given.');
    } else {
      showError(ui.modelStatus, e);
    }
  }
}

async function selectModel(name: string): Promise<void> {
  try {
    const meta = (await (await call(`/v1/models/${encodeURIComponent(name)}`)).json()) as ModelMetadata;
    showModel(meta);
    setStatus(ui.modelStatus, meta.ready ? '' : 'The server is still loading its models: requests wait or are refused until it is ready.');
  } catch (e) {
    showModel(undefined);
    showError(ui.modelStatus, e);
  }
}

const list = (values: readonly number[]) => `[${values.join(', ')}]`;

function showModel(meta: ModelMetadata | undefined): void {
  model = meta;
  updateDrop();
  ui.untrained.hidden = meta?.trained !== false;
  ui.modelInfo.hidden = meta === undefined;
  if (meta === undefined) return;
  const p = meta.preprocess;
  const facts: Array<[string, string]> = [
    ['Input', `${p.crop} × ${p.crop} px, ${p.channels}, ${p.layout}`],
    [
      'Preprocessing',
      `shorter side resized to ${p.resize} px, centre crop ${p.crop} px; pixels ÷ ${p.scale}, mean ${list(p.mean)}, std ${list(p.std)}${
        p.decode === undefined
          ? ''
          : p.decode === 'fast'
            ? '; large JPEG and WebP decoded at reduced scale (fast)'
            : '; every image decoded at full scale (exact)'
      }`,
    ],
    ['Labels', meta.labels === 0 ? 'none (classes shown by index)' : `${meta.labels}`],
    ['Output', `${meta.classes} classes, ${meta.output_kind === 'logits' ? 'logits (softmax by the server)' : 'probabilities'}`],
    ['Trained', meta.trained === null ? 'not stated in config.json' : meta.trained ? 'yes' : 'no: random weights'],
    ['Version', `${meta.version}, on ${meta.execution_provider}, batches of up to ${meta.max_batch_size}`],
  ];
  if (meta.description !== null) facts.push(['About', meta.description]);
  ui.modelInfo.replaceChildren(...facts.flatMap(([term, value]) => [el('dt', undefined, term), el('dd', undefined, value)]));
  ui.topK.max = String(meta.classes);
}

function topK(): number {
  const value = Number(ui.topK.value);
  const max = model?.classes ?? 1000;
  return Number.isInteger(value) && value >= 1 ? Math.min(value, max) : Math.min(5, max);
}

/**
 * `preprocess;dur=1.2, queue;dur=0.1, cache;desc=hit, …` as [name, shown] pairs, in the
 * server's order: a duration in ms, or the description of an entry without one (where the
 * answer came from: `cache` hit, coalesced or miss).
 */
function serverTiming(header: string | null): Array<[string, string]> {
  if (header === null) return [];
  return header.split(',').flatMap((metric) => {
    const [name = '', ...params] = metric.split(';').map((s) => s.trim());
    const dur = params.find((param) => param.startsWith('dur='));
    const desc = params.find((param) => param.startsWith('desc='));
    if (name === '') return [];
    if (dur !== undefined) return [[name, `${Number(dur.slice(4)).toFixed(1)} ms`] as [string, string]];
    return desc === undefined ? [] : [[name, desc.slice(5).replace(/^"(.*)"$/, '$1')] as [string, string]];
  });
}

function showPrediction(body: HTMLElement, scores: readonly ClassScore[], timing: Array<[string, string]>, roundTripMs: number): void {
  const rows = el('ol', 'top-k');
  rows.setAttribute('aria-label', `Top ${scores.length} classes`);
  for (const s of scores) {
    const row = el('li');
    const bar = el('span', 'bar');
    bar.setAttribute('aria-hidden', 'true');
    const fill = el('span', 'fill');
    // The CSSOM, not a style attribute: the page's CSP refuses inline styles.
    fill.style.width = `${(s.score * 100).toFixed(1)}%`;
    bar.append(fill);
    row.append(el('span', 'label', s.label), bar, el('span', 'score', `${(s.score * 100).toFixed(1)} %`));
    rows.append(row);
  }
  const times = el('dl', 'timing');
  for (const [name, shown] of timing) times.append(el('dt', undefined, name), el('dd', undefined, shown));
  times.append(el('dt', undefined, 'round trip'), el('dd', undefined, `${roundTripMs.toFixed(0)} ms`));
  body.replaceChildren(rows, times);
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function addCard(file: File, modelName: string): HTMLElement {
  const card = el('li', 'result');
  if (file.type.startsWith('image/')) {
    const img = el('img', 'thumb');
    img.alt = '';
    img.src = URL.createObjectURL(file);
    previews.push(img.src);
    img.addEventListener('error', () => img.remove());
    card.append(img);
  }
  const main = el('div', 'result-main');
  const title = el('h3', 'file-name', file.name === '' ? 'Pasted image' : file.name);
  const meta = el('p', 'result-meta', `${size(file.size)} · ${modelName}`);
  const body = el('div', 'result-body');
  body.append(el('p', 'status', 'Classifying…'));
  main.append(title, meta, body);
  card.append(main);
  ui.results.prepend(card);
  ui.clear.hidden = false;
  return body;
}

async function classify(file: File, modelName: string, k: number, body: HTMLElement): Promise<void> {
  const started = performance.now();
  try {
    const response = await call(`/v1/models/${encodeURIComponent(modelName)}:predict?top_k=${k}`, {
      method: 'POST',
      // The file as it is: the server detects the format from the bytes, and refuses what is no image.
      headers: { 'Content-Type': file.type === '' ? 'application/octet-stream' : file.type },
      body: file,
    });
    const answer = (await response.json()) as PredictResponse;
    const prediction = answer.predictions[0];
    if (prediction === undefined) throw new ApiError(response.status, '', 'The answer holds no prediction');
    showPrediction(body, prediction.top_k, serverTiming(response.headers.get('Server-Timing')), performance.now() - started);
  } catch (e) {
    showError(body, e);
  }
}

async function classifyAll(files: readonly File[]): Promise<void> {
  if (files.length === 0) return;
  if (model === undefined) {
    setStatus(ui.modelStatus, 'Pick a model first.');
    return;
  }
  const modelName = model.name;
  const k = topK();
  const work = files.map((file) => ({ file, body: addCard(file, modelName) }));
  const next = async (): Promise<void> => {
    for (let item = work.shift(); item !== undefined; item = work.shift()) await classify(item.file, modelName, k, item.body);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_REQUESTS, work.length) }, next));
}

ui.model.addEventListener('change', () => void selectModel(ui.model.value));
ui.keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  apiKey = ui.key.value.trim();
  void loadModels();
});
ui.drop.addEventListener('click', () => ui.files.click());
ui.files.addEventListener('change', () => {
  const files = [...(ui.files.files ?? [])];
  // Cleared so that choosing the same file again is a change too.
  ui.files.value = '';
  void classifyAll(files);
});
ui.clear.addEventListener('click', () => {
  ui.results.replaceChildren();
  for (const url of previews.splice(0)) URL.revokeObjectURL(url);
  ui.clear.hidden = true;
  ui.drop.focus();
});

// Files dropped anywhere on the page are classified, never opened by the browser in its place.
window.addEventListener('dragover', (event) => {
  event.preventDefault();
  ui.drop.classList.add('dragging');
});
window.addEventListener('dragleave', (event) => {
  if (event.relatedTarget === null) ui.drop.classList.remove('dragging');
});
window.addEventListener('drop', (event) => {
  event.preventDefault();
  ui.drop.classList.remove('dragging');
  void classifyAll([...(event.dataTransfer?.files ?? [])]);
});
document.addEventListener('paste', (event) => {
  const files = [...(event.clipboardData?.files ?? [])];
  if (files.length > 0) {
    event.preventDefault();
    void classifyAll(files);
  }
});

void loadModels();
