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

/**
 * Checks an `Authorization` value against the keys, for any transport (HTTP headers, gRPC
 * metadata); throws UNAUTHORIZED. `undefined` when no keys are set.
 */
export function createKeyVerifier(keys: readonly string[]): ((authorization: unknown) => void) | undefined {
  if (keys.length === 0) return undefined;
  const digests = keys.map(digest);
  // RFC 6750 §3: no error attribute when no credentials were sent at all.
  const challenge = { 'WWW-Authenticate': 'Bearer realm="inference"' };
  const invalid = { 'WWW-Authenticate': 'Bearer realm="inference", error="invalid_token"' };
  return (authorization) => {
    const match = typeof authorization === 'string' ? /^Bearer +(\S+) *$/i.exec(authorization) : null;
    if (!match) throw errors.UNAUTHORIZED('Send Authorization: Bearer <API key>', { headers: challenge });
    const given = digest(match[1]!);
    let ok = false;
    // Check every key, so timing says nothing about which one (if any) matched.
    for (const d of digests) ok = timingSafeEqual(d, given) || ok;
    if (!ok) throw errors.UNAUTHORIZED('The API key is not valid', { headers: invalid });
  };
}

/** Refuses requests without a valid `Authorization: Bearer <key>`; `undefined` when no keys are set. */
export function createApiKeyCheck(keys: readonly string[]): RouteGuard | undefined {
  const verify = createKeyVerifier(keys);
  if (verify === undefined) return undefined;
  return async (request) => verify(request.headers.authorization);
}

/**
 * Route options that apply `guard` (if any), then `more`, after the rate limit and before the
 * body is read.
 */
export function guarded(guard: RouteGuard | undefined, ...more: RouteGuard[]): { preParsing?: RouteGuard[] } {
  const hooks = guard ? [guard, ...more] : more;
  return hooks.length > 0 ? { preParsing: hooks } : {};
}
