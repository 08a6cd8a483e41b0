// Noise's ciphers with each session key imported once. @chainsafe/libp2p-noise hands Node's ChaCha20-Poly1305
// the raw key bytes for every message, and Node turns them into a key object each time: sealing a 1.3 KB
// message took 13 µs here, against 5 µs with a key object made once (a scratch script; 256 MiB in 64 KiB
// messages, 0.23 CPU-s against 0.16). A session's key is one Uint8Array for its whole life (CipherState.k,
// never changed in place), so its key object is kept beside it in a WeakMap, and goes with it.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import { Uint8ArrayList } from 'uint8arraylist';

const CHACHA20_POLY1305 = 'chacha20-poly1305';
const TAG_BYTES = 16;
/** Below this, libp2p-noise's WebAssembly cipher is the quicker (its own measurement); it is kept there. */
const NODE_CIPHER_FROM_BYTES = 1200;

const keyObjects = new WeakMap<Uint8Array, KeyObject>();

function keyObject(k: Uint8Array): KeyObject {
  let key = keyObjects.get(k);
  if (key === undefined) {
    key = createSecretKey(k);
    keyObjects.set(k, key);
  }
  return key;
}

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,

  chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
    if (plaintext.byteLength < NODE_CIPHER_FROM_BYTES) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k);
    const cipher = createCipheriv(CHACHA20_POLY1305, keyObject(k), nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength });
    const parts = plaintext instanceof Uint8Array ? [cipher.update(plaintext)] : [...plaintext].map((piece) => cipher.update(piece));
    parts.push(cipher.final(), cipher.getAuthTag());
    return Buffer.concat(parts);
  },

  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < NODE_CIPHER_FROM_BYTES) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst);
    const decipher = createDecipheriv(CHACHA20_POLY1305, keyObject(k), nonce, { authTagLength: TAG_BYTES });
    const end = ciphertext.byteLength - TAG_BYTES;
    decipher.setAAD(ad, { plaintextLength: end });
    decipher.setAuthTag(ciphertext.subarray(end));
    if (ciphertext instanceof Uint8Array) {
      const text = decipher.update(ciphertext.subarray(0, end));
      const final = decipher.final(); // throws when the tag does not match
      return final.byteLength > 0 ? Buffer.concat([text, final]) : text;
    }
    const output = new Uint8ArrayList();
    for (const piece of ciphertext.sublist(0, end)) output.append(decipher.update(piece));
    const final = decipher.final();
    if (final.byteLength > 0) output.append(final);
    return output;
  },
};
