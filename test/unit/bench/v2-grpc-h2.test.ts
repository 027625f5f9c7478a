/**
 * The lean gRPC client's framing (bench/lib/v2-grpc-h2.ts): gRPC's length-prefixed messages read
 * back whole however the DATA chunks cut them. Its calls themselves run against the real server
 * in `npm run bench:grpc`, which checks every answer and compares the first with HTTP's.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessageReader } from '../../../bench/lib/v2-grpc-h2.js';

function frame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

describe('createMessageReader', () => {
  const messages = [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('last')];
  const stream = Buffer.concat(messages.map(frame));

  it('gives each message whole, whatever the chunk size, including cuts inside a prefix', () => {
    for (const size of [1, 2, 3, 4, 5, 6, 7, 64, 1000, 65_536, stream.length]) {
      const got: Buffer[] = [];
      const read = createMessageReader((m) => got.push(Buffer.from(m)));
      for (let at = 0; at < stream.length; at += size) read(stream.subarray(at, at + size));
      assert.deepEqual(got, messages, `chunks of ${size} bytes`);
    }
  });

  it('refuses a compressed message, which the client never asks for', () => {
    const compressed = frame(Buffer.from('x'));
    compressed[0] = 1;
    assert.throws(() => createMessageReader(() => undefined)(compressed), /compressed/);
  });
});
