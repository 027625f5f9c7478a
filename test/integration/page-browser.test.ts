/**
 * The page in a real browser: Debian's Chromium (/usr/bin/chromium) driven by playwright-core,
 * against a listening server with the trained ResNet-20. Images are chosen through the page's
 * own controls, by keyboard; what is checked is what a person sees: "cat" on top for Chelsea,
 * labelled bars, the Server-Timing stages, the catalog's refusals in words (415, 413, 401), the
 * untrained model's warning, focus styles and WCAG AA contrast, and no CSP violation. Also
 * `/docs` (Swagger UI) showing the predict operation. Screenshots go to test-output/page/.
 *
 * Without Chromium the suite is skipped, saying why, except in CI (CI=true), where it fails.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PHOTOS_DIR, REPO_ROOT, RESNET20_CONFIG, RESNET20_DIR, startApp, tempRepository } from '../helpers.js';
import { listen } from './hostile-support.js';

const CHROMIUM = '/usr/bin/chromium';
/** Screenshots, for people to look at (gitignored). */
const OUTPUT = join(REPO_ROOT, 'test-output', 'page');
const KEY = 'rs-page-4d2f8a61c9e0b7d3';

const missing = !existsSync(CHROMIUM);
const skip = missing && process.env.CI !== 'true' ? `no Chromium at ${CHROMIUM} (apt-get install chromium)` : false;

/** A generous bound on waiting for something to appear; it turns a hang into a failure, it measures nothing. */
const WAIT = { timeout: 30_000 };

const chelsea = join(PHOTOS_DIR, 'chelsea.png');
const rocket = join(PHOTOS_DIR, 'rocket.jpg');
const textFile = { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('This is not an image.\n') };

/** The trained ResNet-20, and the same weights declared untrained, on a listening server. */
async function serve(t: TestContext, env: Record<string, string> = {}): Promise<string> {
  const repo = await tempRepository(t, [
    { name: 'resnet20', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, trained: true } },
    { name: 'resnet20-random', from: RESNET20_DIR, config: { ...RESNET20_CONFIG, trained: false } },
  ]);
  const app = await startApp(t, repo, env);
  return `http://127.0.0.1:${await listen(app)}`;
}

/**
 * Runs in the page (as a string: the tests compile without DOM types). Every element with text
 * of its own, shown and enabled, against the first opaque background behind it: WCAG 2.x
 * contrast of at least 4.5 (3 for large text). Returns the failures.
 */
const CONTRAST_FAILURES = `(() => {
  const rgba = (c) => { const v = c.match(/[\\d.]+/g).map(Number); return { r: v[0], g: v[1], b: v[2], a: v.length > 3 ? v[3] : 1 }; };
  const channel = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const behind = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c.a === 1) return c; } return { r: 255, g: 255, b: 255, a: 1 }; };
  const failures = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('[disabled], [hidden], [aria-hidden="true"]') || el.getClientRects().length === 0) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '')) continue;
    const style = getComputedStyle(el);
    const [hi, lo] = [luminance(rgba(style.color)), luminance(behind(el))].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const px = parseFloat(style.fontSize);
    const large = px >= 24 || (Number(style.fontWeight) >= 700 && px >= 18.66);
    if (ratio < (large ? 3 : 4.5)) failures.push(el.tagName + '.' + el.className + ' "' + el.textContent.trim().slice(0, 40) + '": ' + ratio.toFixed(2));
  }
  return failures;
})()`;

describe('the page in Chromium', { skip }, () => {
  let browser: Browser;
  before(async () => {
    assert.ok(!missing, `CI=true but there is no Chromium at ${CHROMIUM}: CI installs the chromium package`);
    browser = await chromium.launch({ executablePath: CHROMIUM });
    await mkdir(OUTPUT, { recursive: true });
  });
  after(() => browser?.close());

  /** A fresh page on `url`; CSP violations and script errors are collected for `assertClean`. */
  async function open(t: TestContext, url: string): Promise<{ page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 900, height: 1000 } });
    t.after(() => context.close());
    const page = await context.newPage();
    // Playwright catches file choosers once a listener exists, switched on asynchronously: one
    // added before the page loads makes sure the chooser that Enter opens is caught.
    page.on('filechooser', () => undefined);
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`script error: ${err.message}`));
    page.on('console', (msg) => {
      if (/Content Security Policy|Refused to/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
    });
    await page.goto(url);
    return { page, problems };
  }

  const newest = (page: Page) => page.locator('#results > li').first();

  /** Waits for the newest result card to hold an answer or an error, and returns its text. */
  async function settled(page: Page): Promise<string> {
    await newest(page).locator('.top-k, .error').first().waitFor(WAIT);
    return (await newest(page).innerText()).replace(/\s+/g, ' ');
  }

  it('classifies a photo chosen by keyboard: cat on top, labelled bars, the Server-Timing stages; a text file is a readable 415', async (t) => {
    const { page, problems } = await open(t, `${await serve(t)}/`);
    await page
      .locator('#model option')
      .first()
      .waitFor({ state: 'attached', ...WAIT });
    await page.selectOption('#model', 'resnet20');
    const facts = page.locator('#model-info');
    await facts.getByText('32 × 32 px, RGB, NCHW').waitFor(WAIT);
    const factText = (await facts.innerText()).replace(/\s+/g, ' ');
    assert.match(factText, /Labels 10\b/);
    assert.match(factText, /Trained yes\b/);
    assert.match(factText, /shorter side resized to 32 px, centre crop 32 px/);
    assert.match(factText, /large JPEG and WebP decoded at reduced scale \(fast\)/);
    assert.equal(await page.locator('#untrained').isVisible(), false);

    // Keyboard only: Tab reaches the drop zone, which shows its focus, and Enter opens the chooser.
    let focused = '';
    for (let presses = 0; presses < 12 && focused !== 'drop'; presses++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate('document.activeElement.id');
    }
    assert.equal(focused, 'drop', 'Tab reaches the drop zone');
    assert.equal(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle'), 'solid', 'focus is visible');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser', WAIT), page.keyboard.press('Enter')]);
    assert.equal(chooser.isMultiple(), true);
    await chooser.setFiles(chelsea);

    const answer = await settled(page);
    const top = newest(page).locator('.top-k li');
    assert.equal(await top.count(), 5);
    assert.equal(await top.first().locator('.label').innerText(), 'cat', answer);
    assert.match(await top.first().locator('.score').innerText(), /^\d{1,3}\.\d %$/);
    const widths = await page.evaluate(`[...document.querySelectorAll('#results > li:first-child .top-k .fill')].map((f) => f.getBoundingClientRect().width)`);
    assert.ok(Array.isArray(widths) && widths.length === 5, String(widths));
    const [first = 0, second = 0] = widths as number[];
    assert.ok(first > second && first > 50, `the top bar is the longest: ${String(widths)}`);
    for (const stage of ['preprocess', 'queue', 'infer', 'postprocess', 'total', 'round trip'])
      assert.match(answer, new RegExp(`${stage} \\d+(\\.\\d)? ms`), answer);
    assert.doesNotMatch(answer, /\bcache\b/, 'the cache is off by default: no cache state to show');
    assert.ok(
      Number(await page.evaluate(`document.querySelector('#results > li:first-child img.thumb').naturalWidth`)) > 0,
      'the preview (a blob: URL) is allowed and shown',
    );
    await page.screenshot({ path: join(OUTPUT, 'answer.png'), fullPage: true });

    // Two at once: each gets its own card and its own answer.
    await page.setInputFiles('#files', [rocket, chelsea]);
    await page.locator('#results > li .top-k').nth(2).waitFor(WAIT);
    assert.equal(await page.locator('#results > li').count(), 3);

    await page.setInputFiles('#files', textFile);
    const refusal = await settled(page);
    assert.match(refusal, /Not an image type the server takes/, refusal);
    assert.match(refusal, /415 UNSUPPORTED_MEDIA_TYPE: Unsupported Content-Type/, refusal);
    assert.match(refusal, /notes\.txt/);

    await page.selectOption('#model', 'resnet20-random');
    await page.locator('#untrained').waitFor({ state: 'visible', ...WAIT });
    assert.match(await page.locator('#untrained').innerText(), /Untrained model/);
    assert.match((await facts.innerText()).replace(/\s+/g, ' '), /Trained no: random weights/);
    await page.screenshot({ path: join(OUTPUT, 'untrained-and-415.png'), fullPage: true });

    assert.deepEqual(await page.evaluate(CONTRAST_FAILURES), [], 'WCAG AA contrast');
    assert.deepEqual(problems, []);
  });

  it('explains a 413 for an upload over UPLOAD_MAX_BYTES and for an image over MAX_IMAGE_PIXELS', async (t) => {
    // chelsea.png is 240 KB of 451×300 pixels; rocket.jpg 112 KB of 640×427.
    const { page, problems } = await open(t, `${await serve(t, { UPLOAD_MAX_BYTES: '200000', MAX_IMAGE_PIXELS: '200000' })}/`);
    await page.locator('#drop:enabled').waitFor(WAIT);
    await page.setInputFiles('#files', chelsea);
    const tooLarge = await settled(page);
    assert.match(tooLarge, /Too large for this server\. 413 PAYLOAD_TOO_LARGE/, tooLarge);
    await page.setInputFiles('#files', rocket);
    const tooManyPixels = await settled(page);
    assert.match(tooManyPixels, /Too large for this server\. 413 IMAGE_TOO_LARGE/, tooManyPixels);
    await page.screenshot({ path: join(OUTPUT, 'too-large.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it('with the response cache on, says where each answer came from: a miss, then a hit for the same photo', async (t) => {
    const { page, problems } = await open(t, `${await serve(t, { RESPONSE_CACHE_MAX_BYTES: '1048576' })}/`);
    await page.locator('#drop:enabled').waitFor(WAIT);
    await page.selectOption('#model', 'resnet20');
    await page.setInputFiles('#files', chelsea);
    const first = await settled(page);
    assert.match(first, /cache miss/, first);
    await page.setInputFiles('#files', chelsea);
    await page.locator('#results > li .top-k').nth(1).waitFor(WAIT);
    const second = await settled(page);
    assert.match(second, /cache hit/, second);
    assert.match(second, /\bcat\b/, second);
    await page.screenshot({ path: join(OUTPUT, 'cache-hit.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it('with API_KEYS: asks for a key, shows the 401 for a wrong one, works with the right one, and keeps it in memory only', async (t) => {
    const server = await serve(t, { API_KEYS: KEY });
    const { page, problems } = await open(t, `${server}/`);
    const keyStatus = page.locator('#key-status');
    await keyStatus.getByText('This server needs an API key').waitFor(WAIT);
    assert.match(await keyStatus.innerText(), /401 UNAUTHORIZED/);
    assert.equal(await page.locator('#drop').isDisabled(), true);

    await page.fill('#key', `${KEY}-wrong`);
    await page.press('#key', 'Enter');
    await keyStatus.getByText('The API key was refused').waitFor(WAIT);
    assert.match(await keyStatus.innerText(), /401 UNAUTHORIZED: The API key is not valid/);
    assert.equal(await page.locator('#drop').isDisabled(), true);

    await page.fill('#key', KEY);
    await page.click('#key-form button');
    await keyStatus.getByText('Key accepted.').waitFor(WAIT);
    await page.locator('#drop:enabled').waitFor(WAIT);
    await page.setInputFiles('#files', chelsea);
    await settled(page);
    assert.equal(await newest(page).locator('.top-k li .label').first().innerText(), 'cat');

    const stored = await page.evaluate('JSON.stringify([localStorage, sessionStorage, document.cookie])');
    assert.doesNotMatch(String(stored), new RegExp(KEY));
    assert.deepEqual(await page.context().cookies(), []);
    assert.doesNotMatch(page.url(), new RegExp(KEY));
    await page.reload();
    await keyStatus.getByText('This server needs an API key').waitFor(WAIT);
    assert.equal(await page.inputValue('#key'), '');
    assert.deepEqual(problems, []);
  });

  it('/docs shows the predict operation, and its "Try it out" classifies a photo sent from the page', async (t) => {
    const { page, problems } = await open(t, `${await serve(t)}/docs`);
    await page.locator('[data-path="/v1/models/{name}:predict"]').first().waitFor(WAIT);
    const operation = page.locator('.opblock-post', { has: page.locator('[data-path="/v1/models/{name}:predict"]') }).first();
    assert.match(await operation.locator('.opblock-summary').innerText(), /POST/);

    await operation.locator('.opblock-summary').click();
    await operation.getByRole('button', { name: 'Try it out' }).click();
    await operation.locator('tr[data-param-name="name"] input').fill('resnet20');
    await operation.locator('tr[data-param-name="top_k"] input').fill('3');
    await operation.locator('.body-param-content-type select, .content-type-wrapper select').first().selectOption('image/*');
    await operation.locator('input[type=file]').first().setInputFiles(chelsea);
    await operation.getByRole('button', { name: 'Execute' }).click();
    const answer = operation
      .locator('.live-responses-table .response-col_description pre, .live-responses-table .response-col_description .microlight')
      .first();
    await answer.waitFor(WAIT);
    assert.equal((await operation.locator('.live-responses-table tr.response .response-col_status').first().innerText()).trim(), '200');
    const body = JSON.parse(await answer.innerText()) as { predictions: Array<{ label: string; top_k: unknown[] }> };
    assert.equal(body.predictions[0]?.label, 'cat');
    assert.equal(body.predictions[0]?.top_k.length, 3);
    await page.screenshot({ path: join(OUTPUT, 'docs-try-it.png') });
    assert.deepEqual(problems, [], 'no CSP violation or script error on /docs');
  });
});
