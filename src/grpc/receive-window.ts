/**
 * The HTTP/2 receive window of the gRPC server: a stand-in for grpc/grpc-node#3058 ("grpc-js:
 * support grpc-node.flow_control_window on the server", open; not in @grpc/grpc-js 1.14.7).
 *
 * grpc-js's client honours the channel option `grpc-node.flow_control_window`; its server never
 * reads it, so every connection keeps Node's default windows of 64 KiB (per stream and per
 * connection) and a client may have at most 64 KiB in flight towards us. A 4.8 MB tensor then
 * arrives in ~75 windows, each waiting for a WINDOW_UPDATE to cross both event loops.
 *
 * What the PR does, done here from outside until it lands: the server's SETTINGS advertise the
 * larger per-stream window (`initialWindowSize`, in the options grpc-js hands to
 * `http2.createServer`), and every session raises its connection window at once
 * (`setLocalWindowSize`). Both go through grpc-js internals, so each is feature-detected; when
 * grpc-js honours the option itself (the PR merged), nothing here touches it; when its internals
 * changed and it does not, the server runs with the 64 KiB windows (slower for large messages,
 * nothing else) and `applyReceiveWindow` says so. test/integration/grpc.test.ts checks the
 * windows a client is given, so an upgrade that breaks this fails there.
 */
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

/**
 * The receive window this server gives each stream and each connection, in bytes: more than
 * one FP32 [8,3,224,224] tensor (4.8 MB), so such a request is sent in one go however busy our
 * event loop is. Measured (2026-12-01, a throwaway probe in its own process sending a 4.8 MB
 * ModelInfer for an unknown model, so that only the upload and a NOT_FOUND count; median of 40,
 * the machine shared): from a plain HTTP/2 client 16.0 ms with 64 KiB windows, 4.8–7.5 ms with
 * 1, 4, 8 or 16 MiB (none clearly better; HTTP/1.1 with the same body 4–12 ms in the same
 * runs), and the server's CPU outside inference per request down from ~16 ms to 8–12 ms.
 * The cost: a client may leave up to this much unread per connection (the connection window)
 * where it could leave 64 KiB, e.g. while grpc-js holds a stream paused between two messages
 * until the handler reads the next; about what a TCP receive buffer of Linux's defaults
 * (tcp_rmem, up to 6 MiB) lets an HTTP/1.1 client leave.
 */
export const RECEIVE_WINDOW_BYTES = 8 * 1024 * 1024;

/** The channel option of grpc-js's client, and of its server once grpc/grpc-node#3058 lands. */
export const FLOW_CONTROL_WINDOW_OPTION = 'grpc-node.flow_control_window';

/** The parts of grpc-js 1.14's `Server` the stand-in reaches; all private there. */
interface ServerInternals {
  commonServerOptions?: { settings?: Record<string, unknown> };
  createHttp2Server?: (this: Server, ...args: unknown[]) => Http2Server;
}

/** What `applyReceiveWindow` did: `native` (grpc-js honours the option), `stand-in`, or `unavailable`. */
export type ReceiveWindowMode = 'native' | 'stand-in' | 'unavailable';

/**
 * Gives every connection of `server` an HTTP/2 receive window of `windowBytes`, per stream and
 * per connection. Call it on a server built with `{ [FLOW_CONTROL_WINDOW_OPTION]: windowBytes }`
 * and before `bindAsync` (the settings are read when grpc-js creates its HTTP/2 server).
 */
export function applyReceiveWindow(server: Server, windowBytes: number): ReceiveWindowMode {
  if (!Number.isInteger(windowBytes) || windowBytes < 65_535 || windowBytes > 2 ** 31 - 1) {
    throw new RangeError(`Expected \`windowBytes\` to be an integer from 65535 to 2147483647, got \`${windowBytes}\``);
  }
  const internals = server as unknown as ServerInternals;
  const options = internals.commonServerOptions;
  const create = internals.createHttp2Server;
  if (typeof options !== 'object' || options === null || typeof create !== 'function') return 'unavailable';
  // grpc/grpc-node#3058 sets this from the option in the constructor: nothing left to do.
  if (options.settings?.initialWindowSize === windowBytes) return 'native';
  options.settings = { ...options.settings, initialWindowSize: windowBytes };
  internals.createHttp2Server = function (this: Server, ...args: unknown[]) {
    const http2Server = create.apply(this, args);
    // 'session' is emitted as the connection is accepted, before any frame is read.
    http2Server.prependListener('session', (session: ServerHttp2Session) => session.setLocalWindowSize(windowBytes));
    return http2Server;
  };
  return 'stand-in';
}
