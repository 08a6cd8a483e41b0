import { strict as assert } from 'node:assert';
import { PlacementIndex, SAMPLE_SIZE } from '../../node/placement.js';

describe('node/placement: the index a requester ranks peers from', () => {
  it('draws a few peers from thousands: holders of the release first, never excluded or full ones', () => {
    const index = new PlacementIndex();
    for (let i = 0; i < 10_000; i++) {
      index.update({ peerId: `p${i}`, releases: i % 100 === 0 ? ['rel'] : [], free: i % 7 === 0 ? 0 : 5, total: 5, load: 0 });
    }
    const exclude = new Set(['p100', 'p200']);
    const ranked = index.rank('rel', { limit: 5, exclude });
    assert.equal(ranked.length, 5);
    for (const id of ranked) {
      assert.ok(!exclude.has(id));
      assert.ok(index.get(id)!.free > 0);
      // Holders (every 100th peer, 86 of them with room) fill the first places.
      assert.ok(index.get(id)!.releases.includes('rel'), `${id} holds the release`);
    }
    assert.ok(index.rank('other', { limit: 20 }).length <= 2 * SAMPLE_SIZE);
  });

  it('counts reservations until the next advert, and forgets a full peer until it has room again', () => {
    const index = new PlacementIndex();
    index.update({ peerId: 'a', releases: ['rel'], free: 2, total: 2, load: 0 });
    index.update({ peerId: 'b', releases: [], free: 2, total: 2, load: 0.5 });
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['a', 'b']);
    index.reserved('a');
    index.reserved('a');
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['b']);
    index.update({ peerId: 'a', releases: ['rel'], free: 1, total: 2, load: 0 });
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['a', 'b']);
    index.remove('a');
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['b']);
    assert.equal(index.size, 1);
  });

  it('takes the free partitions a reservation\'s answer gives: other requesters\' reservations count', () => {
    const index = new PlacementIndex();
    index.update({ peerId: 'a', releases: ['rel'], free: 10, total: 10, load: 0 });
    index.update({ peerId: 'b', releases: ['rel'], free: 9, total: 10, load: 0 });
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['a', 'b']);
    // Others filled `a` since its advert: its answer says 2 left, so `b` (9, as advertised) comes first now.
    index.reserved('a', 2);
    assert.equal(index.get('a')!.free, 2);
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['b', 'a']);
    index.reserved('a', 0);
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['b']);
    // Room again (instances destroyed since): ranked again.
    index.reserved('a', 5);
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['b', 'a']);
  });

  it('counts the reservations asked and not answered yet against a peer\'s room', () => {
    const index = new PlacementIndex();
    index.update({ peerId: 'a', releases: ['rel'], free: 2, total: 10, load: 0 });
    index.update({ peerId: 'b', releases: ['rel'], free: 3, total: 10, load: 0 });
    index.asking('b');
    index.asking('b');
    // b: 3 free, 2 being asked for: 1 of room, less than a's 2.
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['a', 'b']);
    index.asking('b');
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['a'], 'no room left while three are pending');
    index.unanswered('b');
    index.reserved('b', 2); // its answer: 2 free, this reservation included; one still pending
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['a', 'b']);
    index.refused('b');
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['a']);
    // Nothing pending is left behind: an advert giving room brings b back as it says.
    index.update({ peerId: 'b', releases: ['rel'], free: 9, total: 10, load: 0 });
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['b', 'a']);
  });

  it('a peer that refused a reservation is not ranked again until its next advert', () => {
    const index = new PlacementIndex();
    index.update({ peerId: 'a', releases: ['rel'], free: 3, total: 3, load: 0 });
    index.update({ peerId: 'b', releases: [], free: 3, total: 3, load: 0 });
    index.refused('a');
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['b']);
    assert.equal(index.get('a')!.free, 0);
    index.update({ peerId: 'a', releases: ['rel'], free: 1, total: 3, load: 0 });
    assert.deepEqual(index.rank('rel', { limit: 5 }), ['a', 'b']);
    index.refused('unknown');
    assert.equal(index.size, 2);
  });

  it('among peers alike, the less used and then the less loaded come first', () => {
    const index = new PlacementIndex();
    index.update({ peerId: 'busy', releases: [], free: 1, total: 4, load: 0 });
    index.update({ peerId: 'loaded', releases: [], free: 4, total: 4, load: 2 });
    index.update({ peerId: 'idle', releases: [], free: 4, total: 4, load: 0.1 });
    assert.deepEqual(index.rank('rel', { limit: 3 }), ['idle', 'loaded', 'busy']);
  });
});
