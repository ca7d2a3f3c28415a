import assert from 'node:assert/strict';
import { test } from 'node:test';
import { base32Decode, totp } from './totp.mjs';

// RFC 6238 Appendix B, SHA-1 rows (8 digits; the secret is "12345678901234567890").
test('TOTP matches the RFC 6238 test vectors', () => {
  const secret = Buffer.from('12345678901234567890');
  assert.equal(totp(secret, 59, 30, 8), '94287082');
  assert.equal(totp(secret, 1111111109, 30, 8), '07081804');
  assert.equal(totp(secret, 20000000000, 30, 8), '65353130');
  assert.deepEqual(base32Decode('GEZDGNBV GY3TQOJQ'), Buffer.from('1234567890'));
});
