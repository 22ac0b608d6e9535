// Shim of `k6/crypto` (hmac only).
import { createHmac } from 'node:crypto';

/** k6's output encodings: hex, base64, base64url (padded), base64rawurl (unpadded), binary. */
export function hmac(algorithm, secret, data, outputEncoding) {
  const digest = createHmac(algorithm, secret).update(data).digest();
  switch (outputEncoding) {
    case 'hex':
      return digest.toString('hex');
    case 'base64':
      return digest.toString('base64');
    case 'base64rawurl':
      return digest.toString('base64url');
    case 'base64url':
      return digest.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    case 'binary':
      return [...digest];
    default:
      throw new Error(`k6 shim: hmac output encoding ${outputEncoding} is not supported`);
  }
}

export default { hmac };
