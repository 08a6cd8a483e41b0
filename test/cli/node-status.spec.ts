// `slapmesh node status` as text: the node's fields, then one line per release, with where to look when a
// build failed.
import { strict as assert } from 'node:assert';
import { statusText } from '../../cli/node/index.js';

describe('cli: slapmesh node status, as text', () => {
  it('prints the fields, then each release: how it was had, or its error and build log', () => {
    const text = statusText({
      peerId: '12D3KooWA', addresses: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA', '/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWA'], peers: 2,
      releases: [
        { cid: 'bagaaa', name: 'hello', state: 'available', source: 'built', log: '/d/software/bagaaa.log', updatedAt: '2026-12-04T10:00:00.000Z' },
        { cid: 'bagbbb', name: 'shop', state: 'available', source: 'peer', peer: '12D3KooWB', updatedAt: '2026-12-04T10:00:00.000Z' },
        { cid: 'bagccc', name: 'db', state: 'building', log: '/d/software/bagccc.log', updatedAt: '2026-12-04T10:00:00.000Z' },
        { cid: 'bagddd', name: 'broken', state: 'error', error: 'part fail: exit status 3\nthe last lines of its output', log: '/d/software/bagddd.log', updatedAt: '2026-12-04T10:00:00.000Z' },
      ],
    });
    assert.equal(text, [
      'peerId: 12D3KooWA',
      'addresses: /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA /ip4/10.0.0.2/tcp/4001/p2p/12D3KooWA',
      'peers: 2',
      'releases: 4',
      '  hello bagaaa available (built here)',
      '  shop bagbbb available (from 12D3KooWB)',
      '  db bagccc building (log: /d/software/bagccc.log)',
      '  broken bagddd error: part fail: exit status 3 (log: /d/software/bagddd.log)',
      '',
    ].join('\n'));
  });

  it('says when there is no release', () => {
    assert.equal(statusText({ peerId: '12D3KooWA', releases: [] }), 'peerId: 12D3KooWA\nreleases: 0\n');
  });
});
