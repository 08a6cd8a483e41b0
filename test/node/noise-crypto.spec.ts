// Noise's ciphers with session keys imported once (node/noise-crypto.ts): what they seal, libp2p-noise's own
// ciphers open, and the other way round, at every size and in both shapes a message comes in; a changed
// byte, tag or key is refused.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import { Uint8ArrayList } from 'uint8arraylist';
import { noiseCrypto } from '../../node/noise-crypto.js';

const SIZES = [0, 1, 1199, 1200, 1201, 65519];
/** As one Buffer, whatever shape the cipher gave. */
const flat = (bytes: Uint8Array | Uint8ArrayList) => Buffer.from(bytes instanceof Uint8Array ? bytes : bytes.subarray());
/** The same bytes as a list of uneven pieces, as a message that spans socket reads comes. */
const pieces = (bytes: Uint8Array) => new Uint8ArrayList(bytes.subarray(0, bytes.byteLength >> 2), bytes.subarray(bytes.byteLength >> 2, bytes.byteLength >> 1), bytes.subarray(bytes.byteLength >> 1));

describe('node/noise-crypto', () => {
  const k = randomBytes(32);
  const nonce = randomBytes(12);
  const ad = randomBytes(32);

  for (const size of SIZES) {
    it(`${size} bytes: sealed here, opened by libp2p-noise's ciphers, and the other way round, flat or in pieces`, () => {
      const plaintext = randomBytes(size);
      for (const input of [plaintext, pieces(plaintext)]) {
        const sealed = flat(noiseCrypto.chaCha20Poly1305Encrypt(input, nonce, ad, k));
        // Buffer comparisons: a failing deepEqual of 64 KiB prints more than it helps.
        assert.ok(sealed.equals(flat(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))), 'sealed differently');
        for (const ciphertext of [sealed, pieces(sealed)]) {
          assert.ok(flat(defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k)).equals(plaintext), 'not opened by libp2p-noise');
          assert.ok(flat(noiseCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k)).equals(plaintext), 'not opened here');
        }
      }
    });
  }

  it('refuses a message with a byte or its tag changed, or opened with another key or nonce', () => {
    const sealed = flat(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(4096), nonce, ad, k));
    const flipped = (at: number) => {
      const copy = Buffer.from(sealed);
      copy[at]! ^= 1;
      return copy;
    };
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(flipped(100), nonce, ad, k));
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(flipped(sealed.byteLength - 1), nonce, ad, k));
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, randomBytes(32)));
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, randomBytes(12), ad, k));
  });

  it('a key made again with other bytes in another array is not mistaken for the first (keys are kept per array)', () => {
    const other = randomBytes(32);
    const plaintext = randomBytes(2000);
    const sealedFirst = flat(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k));
    const sealedOther = flat(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, other));
    assert.ok(!sealedFirst.equals(sealedOther));
    assert.ok(flat(defaultCrypto.chaCha20Poly1305Decrypt(sealedOther, nonce, ad, other)).equals(plaintext));
  });
});
