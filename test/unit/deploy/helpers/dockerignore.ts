/**
 * .dockerignore as the builders read it (moby's patternmatcher, which buildah follows): one
 * pattern a line, `#` comments, a leading `!` re-includes; `*` and `?` never cross a `/`, `**`
 * spans any number of folders; a pattern that matches a folder matches everything under it; the
 * last pattern that matches a path decides.
 */
import { readRepoText } from './repo.js';

interface Pattern {
  readonly negated: boolean;
  readonly regex: RegExp;
}

function compile(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      // `**/` is zero or more folders; a trailing `**` is anything.
      if (pattern[i + 2] === '/') {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

export function parseDockerignore(text: string): Pattern[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((line) => {
      const negated = line.startsWith('!');
      const body = (negated ? line.slice(1) : line).trim().replace(/^\/+/, '').replace(/\/+$/, '');
      return { negated, regex: compile(body) };
    });
}

/** True when the path (relative to the context, `/`-separated) is left out of the build context. */
export function isIgnored(patterns: readonly Pattern[], path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const { negated, regex } of patterns) {
    if (candidates.some((c) => regex.test(c))) ignored = !negated;
  }
  return ignored;
}

export function readDockerignore(): Pattern[] {
  return parseDockerignore(readRepoText('.dockerignore'));
}
