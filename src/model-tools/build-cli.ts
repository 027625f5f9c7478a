/**
 * `npm run model:build -- --arch <name> --out <dir> [--classes N] [--shortcut projection|zeropad] [--seed S]`
 */
import { parseArgs } from 'node:util';
import { ARCHITECTURES, ARCHITECTURE_NAMES } from './architectures.js';
import type { ShortcutKind } from './architectures.js';
import { buildModelFiles } from './build.js';
import { MAX_SEED } from './prng.js';

const USAGE = `Usage: npm run model:build -- --arch <name> --out <dir> [options]

Builds a ResNet with untrained (random, seeded) weights and writes <dir>/model.onnx,
<dir>/config.json and <dir>/labels.txt.

Options:
  --arch <name>        ${ARCHITECTURE_NAMES.join(', ')}
  --out <dir>          folder to write (created if missing), e.g. models/resnet50
  --classes <n>        outputs of the final layer (default: 1000 for ImageNet
                       ResNets, 10 for CIFAR ones)
  --shortcut <kind>    projection | zeropad, for blocks that change shape
                       (default: projection for ImageNet ResNets, zeropad for CIFAR)
  --seed <n>           weight seed, 0 to ${MAX_SEED} (default: 0)
  -h, --help           show this help`;

class UsageError extends Error {}

function parseInteger(name: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > max) {
    throw new UsageError(`--${name} must be an integer from ${name === 'seed' ? 0 : 1} to ${max}, got "${value}"`);
  }
  return Number(value);
}

function parseCommandLine(argv: string[]) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        arch: { type: 'string' },
        out: { type: 'string' },
        classes: { type: 'string' },
        shortcut: { type: 'string' },
        seed: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return undefined;
  if (!values.arch) throw new UsageError('--arch is required');
  if (!Object.hasOwn(ARCHITECTURES, values.arch)) {
    throw new UsageError(`--arch must be one of ${ARCHITECTURE_NAMES.join(', ')}, got "${values.arch}"`);
  }
  if (!values.out) throw new UsageError('--out is required');
  if (values.shortcut !== undefined && values.shortcut !== 'projection' && values.shortcut !== 'zeropad') {
    throw new UsageError(`--shortcut must be projection or zeropad, got "${values.shortcut}"`);
  }
  const classes = parseInteger('classes', values.classes, 100_000);
  if (classes === 0) throw new UsageError('--classes must be an integer from 1 to 100000, got "0"');
  return {
    arch: values.arch,
    outDir: values.out,
    classes,
    shortcut: values.shortcut as ShortcutKind | undefined,
    seed: parseInteger('seed', values.seed, MAX_SEED),
  };
}

async function main(): Promise<number> {
  let options;
  try {
    options = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`model:build: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (!options) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const started = performance.now();
  const paths = await buildModelFiles(options);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `Built ${options.arch} in ${seconds} s:\n  ${paths.modelPath}\n  ${paths.configPath}\n  ${paths.labelsPath}\n` +
      'Its weights are UNTRAINED (random): predictions mean nothing. See docs/models.md for trained models.\n',
  );
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`model:build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
