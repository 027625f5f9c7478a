/**
 * `npm run model:fetch -- <name> [--repository dir] [--base-url url] [--force]`, `--list`.
 * An entry point: the only model-tools file besides build-cli.ts that reads the environment.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CATALOG, findCatalogEntry } from './catalog.js';
import type { DownloadProgress } from './download.js';
import { DownloadError } from './download.js';
import { FetchError, fetchModel, fetchStagingDir, resolveModelUrl } from './fetch.js';

const USAGE = `Usage: npm run model:fetch -- <name> [options]
       npm run model:fetch -- --list

Downloads a pretrained ONNX ResNet into the model repository as <repository>/<name>/
(model.onnx, config.json, labels.txt), checking its size and sha256. The model folder
appears only once the model is complete and verified; an interrupted download is kept in
<repository>/.fetch-<name>/ (which the server ignores) and resumes when run again.

Models:
${CATALOG.map((e) => `  ${e.name.padEnd(14)} ${e.description}`).join('\n')}

Options:
  --repository <dir>   model repository (default: $MODEL_REPOSITORY or ./models)
  --base-url <url>     fetch from this folder URL instead of the catalog's (a mirror);
                       default: $MODEL_FETCH_BASE_URL or the catalog's
  --force              replace an existing model folder of the same name
  --list               list the catalog with URLs, sizes and sha256
  -h, --help           show this help`;

function formatMegabytes(bytes: number): string {
  return (bytes / 1_000_000).toFixed(1);
}

/** Progress on a terminal: one line redrawn at most every 200 ms; nothing when piped. */
function createProgressPrinter(stream: NodeJS.WriteStream, file: string) {
  let lastDraw = 0;
  const started = Date.now();
  return {
    update(p: DownloadProgress) {
      if (!stream.isTTY) return;
      const now = Date.now();
      if (now - lastDraw < 200 && p.receivedBytes !== p.totalBytes) return;
      lastDraw = now;
      const seconds = Math.max((now - started) / 1000, 0.001);
      const total = p.totalBytes === undefined ? '?' : formatMegabytes(p.totalBytes);
      const percent = p.totalBytes
        ? ` ${Math.floor((100 * p.receivedBytes) / p.totalBytes)
            .toString()
            .padStart(3)} %`
        : '';
      stream.write(`\r  ${file}  ${formatMegabytes(p.receivedBytes)} / ${total} MB${percent}  (${formatMegabytes(p.receivedBytes / seconds)} MB/s)   `);
    },
    finish() {
      if (stream.isTTY && lastDraw > 0) stream.write('\n');
    },
  };
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      allowPositionals: true,
      options: {
        repository: { type: 'string' },
        'base-url': { type: 'string' },
        force: { type: 'boolean' },
        list: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    process.stderr.write(`model:fetch: ${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const baseUrl = values['base-url'] ?? (process.env.MODEL_FETCH_BASE_URL?.trim() || undefined);
  if (values.list) {
    for (const e of CATALOG) {
      process.stdout.write(`${e.name}\n  ${e.description}\n  ${resolveModelUrl(e, baseUrl)}\n  ${e.sizeBytes} bytes, sha256 ${e.sha256}\n`);
    }
    return 0;
  }
  if (positionals.length !== 1) {
    process.stderr.write(`model:fetch: expected one model name, got ${positionals.length}\n\n${USAGE}\n`);
    return 2;
  }
  const name = positionals[0] ?? '';
  const repositoryDir = values.repository ?? (process.env.MODEL_REPOSITORY?.trim() || './models');

  const progress = createProgressPrinter(process.stderr, name);
  process.stderr.write(`Fetching ${name} into ${repositoryDir}\n`);
  try {
    const result = await fetchModel({
      name,
      repositoryDir,
      force: values.force ?? false,
      ...(baseUrl !== undefined && { baseUrl }),
      onProgress: (p) => progress.update(p),
      onRetry: ({ attempt, delayMs, error }) => {
        progress.finish();
        process.stderr.write(`  ${error.message}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s\n`);
      },
    });
    progress.finish();
    process.stdout.write(
      `Fetched ${result.name} (${result.bytes} bytes, sha256 ${result.sha256}${result.resumed ? ', resumed' : ''}) from ${result.url}\n` +
        `  into ${result.modelDir}\n`,
    );
    return 0;
  } catch (error) {
    progress.finish();
    if (error instanceof FetchError || error instanceof DownloadError) {
      process.stderr.write(`model:fetch: ${error.message}\n`);
      const entry = findCatalogEntry(name);
      const staging = entry === undefined ? undefined : fetchStagingDir(repositoryDir, entry.name);
      if (staging !== undefined && existsSync(staging)) {
        process.stderr.write(
          `  What was downloaded is kept in ${staging} (the server ignores it): run the same command again to resume, or delete that folder.\n`,
        );
      }
      return 1;
    }
    throw error;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`model:fetch failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
