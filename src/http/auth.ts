/**
 * Optional bearer-key authentication for the inference and model routes. Keys are compared
 * in constant time (by their SHA-256, so lengths leak nothing) and never logged. The check runs
 * as a `preParsing` hook: after the rate limit (an `onRequest` hook, so guessing keys is
 * rate-limited too) and before the body is read, so a client without a key costs neither body
 * buffering nor JSON parsing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../errors.js';

/** A route hook that refuses the request by throwing a catalog error. */
export type RouteGuard = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

const digest = (key: string) => createHash('sha256').update(key).digest();

/** Refuses requests without a valid `Authorization: Bearer <key>`; `undefined` when no keys are set. */
export function createApiKeyCheck(keys: readonly string[]): RouteGuard | undefined {
  if (keys.length === 0) return undefined;
  const digests = keys.map(digest);
  // RFC 6750 §3: no error attribute when no credentials were sent at all.
  const challenge = { 'WWW-Authenticate': 'Bearer realm="inference"' };
  const invalid = { 'WWW-Authenticate': 'Bearer realm="inference", error="invalid_token"' };
  return async (request) => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null;
    if (!match) throw errors.UNAUTHORIZED('Send Authorization: Bearer <API key>', { headers: challenge });
    const given = digest(match[1]!);
    let ok = false;
    // Check every key, so timing says nothing about which one (if any) matched.
    for (const d of digests) ok = timingSafeEqual(d, given) || ok;
    if (!ok) throw errors.UNAUTHORIZED('The API key is not valid', { headers: invalid });
  };
}

/**
 * Route options that apply `guard` (if any), then `more`, after the rate limit and before the
 * body is read.
 */
export function guarded(guard: RouteGuard | undefined, ...more: RouteGuard[]): { preParsing?: RouteGuard[] } {
  const hooks = guard ? [guard, ...more] : more;
  return hooks.length > 0 ? { preParsing: hooks } : {};
}
