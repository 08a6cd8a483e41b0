// The buffers a body is sent from: each filled again only once the client received what it held.
import { strict as assert } from 'node:assert';
import { BadAcknowledgementError, SendBuffers } from '../../protocols/cache/send-buffers.js';

describe('protocols/cache send buffers', () => {
  const noLimit = (free: Promise<void>) => free;

  it('hands out each buffer again only once what it held was acknowledged', async () => {
    const buffers = new SendBuffers(2, 8);
    const first = await buffers.take(8, noLimit);
    const second = await buffers.take(8, noLimit);
    assert.notEqual(first.buffer, second.buffer);
    let third: Buffer | undefined;
    const taking = buffers.take(5, noLimit).then((buffer) => (third = buffer));
    buffers.acknowledge(4); // not all of the first buffer
    await Promise.resolve();
    assert.equal(third, undefined);
    buffers.acknowledge(8);
    await taking;
    assert.equal(third!.buffer, first.buffer, 'the first buffer, filled again');
    assert.equal(third!.byteLength, 5);
  });

  it('refuses an acknowledgement of more than was sent, or of less than before', () => {
    const buffers = new SendBuffers(2, 8);
    void buffers.take(8, noLimit);
    assert.throws(() => buffers.acknowledge(9), BadAcknowledgementError);
    buffers.acknowledge(6);
    assert.throws(() => buffers.acknowledge(5), { name: 'BadAcknowledgementError' });
    assert.throws(() => buffers.acknowledge(1.5), { name: 'BadAcknowledgementError' });
  });

  it('a wait bounded by the caller fails as the caller says', async () => {
    const buffers = new SendBuffers(1, 8);
    await buffers.take(8, noLimit);
    await assert.rejects(buffers.take(8, () => Promise.reject(new Error('stalled'))), { message: 'stalled' });
  });
});
