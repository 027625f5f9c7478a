/**
 * Optional bearer-key authentication for the inference and model routes. Keys are compared
 * in constant time (by their SHA-256, so lengths leak nothing) and never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { errors } from '../errors.js';

const digest = (key: string) => createHash('sha256').update(key).digest();

/** A preHandler refusing requests without a valid `Authorization: Bearer <key>`; `undefined` when no keys are set. */
export function createApiKeyCheck(keys: readonly string[]): ((request: FastifyRequest) => Promise<void>) | undefined {
  if (keys.length === 0) return undefined;
  const digests = keys.map(digest);
  const challenge = { 'WWW-Authenticate': 'Bearer realm="inference"' };
  return async (request) => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw errors.UNAUTHORIZED('Send Authorization: Bearer <API key>', { headers: challenge });
    const given = digest(match[1]!);
    let ok = false;
    // Check every key, so timing says nothing about which one (if any) matched.
    for (const d of digests) ok = timingSafeEqual(d, given) || ok;
    if (!ok) throw errors.UNAUTHORIZED('The API key is not valid', { headers: { 'WWW-Authenticate': 'Bearer realm="inference", error="invalid_token"' } });
  };
}
