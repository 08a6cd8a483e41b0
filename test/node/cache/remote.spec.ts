// The order in which a fetcher tries the providers of a blob (node/cache/remote.ts).
import { strict as assert } from 'node:assert';
import { rankProviders } from '../../../node/cache/remote.js';

const CID = 'bagaaierablob';
const providers = Array.from({ length: 8 }, (_, i) => `provider-${i}`);
const fetchers = Array.from({ length: 200 }, (_, i) => `fetcher-${i}`);

describe('node/cache/remote: rankProviders', () => {
  it('gives a fetcher one order for a blob, whatever order the providers come in', () => {
    const order = rankProviders(providers, CID, 'fetcher-0', new Map(), 0);
    assert.deepEqual([...order].sort(), [...providers].sort());
    assert.deepEqual(rankProviders([...providers].reverse(), CID, 'fetcher-0', new Map(), 0), order);
  });

  it('spreads the fetchers of one blob over its providers', () => {
    const firstChoices = new Map<string, number>();
    for (const fetcher of fetchers) {
      const [first] = rankProviders(providers, CID, fetcher, new Map(), 0);
      firstChoices.set(first!, (firstChoices.get(first!) ?? 0) + 1);
    }
    // 200 fetchers over 8 providers: every provider is someone's first choice, none is most people's.
    assert.equal(firstChoices.size, providers.length);
    assert.ok(Math.max(...firstChoices.values()) < fetchers.length / 4, JSON.stringify([...firstChoices]));
  });

  it('puts the providers penalised until later last, and forgets a penalty once it ran out', () => {
    const order = rankProviders(providers, CID, 'fetcher-0', new Map(), 0);
    const penalised = new Map([[order[0]!, 1_000]]);
    assert.deepEqual(rankProviders(providers, CID, 'fetcher-0', penalised, 999), [...order.slice(1), order[0]]);
    assert.deepEqual(rankProviders(providers, CID, 'fetcher-0', penalised, 1_000), order);
  });
});
