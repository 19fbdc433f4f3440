// The test helper that plays the authenticator app must agree with RFC 6238 itself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base32Decode, codeAtStep, totp } from '../totp.mjs';

// RFC 6238 appendix B uses the ASCII secret "12345678901234567890" with SHA-1.
const RFC_KEY = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

test('decodes base32 keys as shown on the set-up page', () => {
  assert.equal(base32Decode(RFC_KEY).toString('ascii'), '12345678901234567890');
  assert.equal(base32Decode('gezd gnbv gy3t qojq gezd gnbv gy3t qojq').toString('ascii'), '12345678901234567890');
  assert.throws(() => base32Decode('0189'));
});

test('computes the RFC 6238 SHA-1 test vectors (last six digits)', () => {
  for (const [seconds, expected] of [
    [59, '287082'],
    [1111111109, '081804'],
    [1111111111, '050471'],
    [1234567890, '005924'],
    [2000000000, '279037'],
    [20000000000, '353130'],
  ]) {
    assert.equal(codeAtStep(RFC_KEY, Math.floor(seconds / 30)), expected, `t=${seconds}`);
    assert.equal(totp(RFC_KEY, { now: seconds * 1000 }), expected);
  }
});
