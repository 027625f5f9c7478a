/**
 * What a route takes as its body, and the 415 that says so. Each route with a body names what
 * it takes in its config (`acceptedBodies`), so that a refusal speaks of that route's inputs
 * whichever door it comes through: the route plugin's own content-type parsers, or Fastify's
 * refusal of a Content-Type it cannot parse at all (error-handler.ts).
 *
 * Raw image bodies (the v1 predict routes): a Content-Type that says nothing of the format
 * (none, `application/octet-stream`, or `application/x-www-form-urlencoded`, which is what
 * `curl --data-binary @cat.jpg URL` sends unless told otherwise) is judged by the bytes: an
 * image is an image, anything else is refused here. A declared type that says otherwise keeps
 * its meaning: JSON is JSON, multipart is multipart, `text/plain` is refused, and `image/*` is
 * an image whichever format it names (the format is read from the bytes when decoding).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errors, type ServingError } from '../errors.js';
import { ACCEPTED_FORMATS_TEXT, describeRefusedContent, detectImageFormat } from '../preprocess/image-format.js';
import { rememberBodyDigest } from './request-body.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route takes as a body, in words, for its 415 answers. */
    acceptedBodies?: string;
    /** The route takes a raw image as its body (its plugin calls `installRawImageParsers`). */
    rawImageBody?: boolean;
  }
}

/** Content-Types that say nothing of an image's format: the bytes decide. */
const FORMATLESS_TYPES: readonly string[] = ['application/octet-stream', 'application/x-www-form-urlencoded'];

/**
 * A declared image type, whatever its parameters (the format is read from the bytes later;
 * `image/jpeg; charset=binary` is still a JPEG), and the literal `image/*` that Swagger UI's
 * "Try it out" sends for openapi.yaml's `image/*` body.
 */
export const IMAGE_CONTENT_TYPE = /^image\/(?:[\w.+-]+|\*)\s*(?:;|$)/i;

/** The request's body, if any, is to be taken as a raw image: a declared image type, or a formatless type (or none) on a route that takes raw images. */
export function isRawImageBody(request: FastifyRequest): boolean {
  const type = request.headers['content-type'];
  if (type !== undefined && IMAGE_CONTENT_TYPE.test(type)) return true;
  if (request.routeOptions.config?.rawImageBody !== true) return false;
  return type === undefined || FORMATLESS_TYPES.includes(type.split(';', 1)[0]!.trim().toLowerCase());
}

/** How a route that takes raw images says so, for its `acceptedBodies`. */
export const RAW_IMAGE_BODY_TEXT = `a ${ACCEPTED_FORMATS_TEXT} image as the body (Content-Type image/*, ${FORMATLESS_TYPES.join(', ')} or none; the format is read from the bytes)`;

/** A client's header value in a message: quoted, and short. */
const shown = (value: string) => JSON.stringify(value.slice(0, 100));

/** The 415 for `request`'s body: `problem`, then what its route takes. */
export function unsupportedBody(request: FastifyRequest, problem: string): ServingError {
  const config = request.routeOptions.config;
  const accepted = config?.acceptedBodies;
  if (accepted === undefined) return errors.UNSUPPORTED_MEDIA_TYPE(problem);
  return errors.UNSUPPORTED_MEDIA_TYPE(`${problem}; ${request.method} ${config.routeTemplate ?? request.routeOptions.url} takes ${accepted}`);
}

/** The 415 for a Content-Type the route does not take (or cannot parse). */
export function unsupportedContentType(request: FastifyRequest): ServingError {
  const type = request.headers['content-type'];
  return unsupportedBody(request, type === undefined ? 'A body without Content-Type is not accepted' : `Unsupported Content-Type ${shown(type)}`);
}

/** What refused bytes look like, when that helps the client fix the request. */
function describeNonImage(body: Buffer): string | undefined {
  const known = describeRefusedContent(body);
  if (known !== undefined) return known;
  // `curl -d @request.json` sends JSON as application/x-www-form-urlencoded too.
  if (/^\s*[{[]/.test(body.subarray(0, 64).toString('latin1'))) return 'JSON (send it with Content-Type: application/json)';
  return undefined;
}

function imageOrRefusal(request: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void): void {
  // An empty body is no image, which the route answers (NO_IMAGES) as for any other type.
  if (body.length === 0 || detectImageFormat(body) !== undefined) {
    rememberBodyDigest(request, body);
    done(null, body);
    return;
  }
  const type = request.headers['content-type'];
  const what = describeNonImage(body);
  const declared = type === undefined ? 'no Content-Type' : `Content-Type ${shown(type)}`;
  done(unsupportedBody(request, `The body (${declared}) is not an image${what === undefined ? '' : `: it looks like ${what}`}`));
}

/** The app's parser for declared image types: the body as it came. */
export function installImageTypeParser(app: FastifyInstance, maxBytes: number): void {
  app.addContentTypeParser<Buffer>(IMAGE_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: maxBytes }, (request, body, done) => {
    rememberBodyDigest(request, body);
    done(null, body);
  });
}

/**
 * The content-type parsers of a plugin whose routes take raw images (each with `rawImageBody`
 * in its config): bodies of a formatless type, or of none, are read (within `maxBytes` and,
 * like every body, the body budget of request-body.ts) and taken when their bytes are an
 * image. `image/*`, JSON and multipart keep the app's own parsers. Any other declared type is
 * refused; its body is read first, as the parser for "no Content-Type" is also the one for
 * every type nobody registered.
 */
export function installRawImageParsers(app: FastifyInstance, maxBytes: number): void {
  const asBytes = { parseAs: 'buffer' as const, bodyLimit: maxBytes };
  // The app's own octet-stream parser takes any bytes; in this plugin they are judged first.
  app.removeContentTypeParser('application/octet-stream');
  app.addContentTypeParser<Buffer>([...FORMATLESS_TYPES], asBytes, (request, body, done) => imageOrRefusal(request, body, done));
  app.addContentTypeParser<Buffer>('*', asBytes, (request, body, done) => {
    if (request.headers['content-type'] === undefined) imageOrRefusal(request, body, done);
    else done(unsupportedContentType(request));
  });
}
