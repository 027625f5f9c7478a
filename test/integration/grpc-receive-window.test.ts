/**
 * The gRPC server's HTTP/2 receive windows (src/grpc/receive-window.ts, a stand-in for
 * grpc/grpc-node#3058 that reaches into @grpc/grpc-js): what a client is given, seen from a
 * plain HTTP/2 client, so that a grpc-js upgrade that breaks the stand-in without honouring
 * `grpc-node.flow_control_window` itself fails here rather than silently slowing large uploads.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { applyReceiveWindow, FLOW_CONTROL_WINDOW_OPTION, RECEIVE_WINDOW_BYTES } from '../../src/grpc/receive-window.js';
import { fp32Request, grpcApp, items, unary, type InferResponse } from './grpc-support.js';

const UPGRADE_HINT =
  'a @grpc/grpc-js upgrade changed what src/grpc/receive-window.ts reaches: see grpc/grpc-node#3058 (if it has landed, the option alone does it)';

describe('gRPC: HTTP/2 receive windows', () => {
  it(`gives every connection ${RECEIVE_WINDOW_BYTES} bytes per stream (SETTINGS) and per connection (WINDOW_UPDATE), not 64 KiB`, async (t) => {
    const { address, inference } = await grpcApp(t);
    const session = http2.connect(`http://${address}`);
    t.after(() => session.destroy());
    const settings = await new Promise<http2.Settings>((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    });
    assert.equal(settings.initialWindowSize, RECEIVE_WINDOW_BYTES, `per-stream window: ${UPGRADE_HINT}`);
    // The server raises the connection window as it accepts the connection: a ping's answer
    // comes after that WINDOW_UPDATE on the same connection.
    await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
    assert.equal(session.state.remoteWindowSize, RECEIVE_WINDOW_BYTES, `connection window: ${UPGRADE_HINT}`);
    // And a request larger than the former window still comes through whole.
    const request = fp32Request(items(8));
    assert.ok(request.raw_input_contents[0]!.length > 65_535);
    const answer = await unary<InferResponse>(inference, 'ModelInfer', request);
    assert.deepEqual(answer.outputs[0]?.shape, [8, 10]);
  });

  it('leaves a grpc-js that honours the option alone, and says when it can do nothing', () => {
    const server = new grpc.Server({ [FLOW_CONTROL_WINDOW_OPTION]: RECEIVE_WINDOW_BYTES });
    const mode = applyReceiveWindow(server, RECEIVE_WINDOW_BYTES);
    assert.ok(mode === 'stand-in' || mode === 'native', `@grpc/grpc-js ${mode}: ${UPGRADE_HINT}`);

    const create = () => assert.fail('not called');
    const honouring = { commonServerOptions: { settings: { initialWindowSize: RECEIVE_WINDOW_BYTES } }, createHttp2Server: create };
    assert.equal(applyReceiveWindow(honouring as unknown as grpc.Server, RECEIVE_WINDOW_BYTES), 'native');
    assert.equal(honouring.createHttp2Server, create, 'not wrapped');

    assert.equal(applyReceiveWindow({} as unknown as grpc.Server, RECEIVE_WINDOW_BYTES), 'unavailable');
    assert.equal(applyReceiveWindow({ commonServerOptions: {} } as unknown as grpc.Server, RECEIVE_WINDOW_BYTES), 'unavailable');
  });

  it('refuses a window HTTP/2 cannot carry, with the value it got', () => {
    const server = new grpc.Server();
    assert.throws(() => applyReceiveWindow(server, 1024), {
      name: 'RangeError',
      message: 'Expected `windowBytes` to be an integer from 65535 to 2147483647, got `1024`',
    });
    assert.throws(() => applyReceiveWindow(server, 2 ** 31), RangeError);
    assert.throws(() => applyReceiveWindow(server, 1.5e6 + 0.5), RangeError);
  });
});
