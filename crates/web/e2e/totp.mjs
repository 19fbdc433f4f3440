// TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps) as an authenticator app computes it,
// so a browser test can type the code a person would read from their phone.

import { createHmac } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
export const STEP_SECONDS = 30;

/** Decodes RFC 4648 base32 (case and spaces ignored, no padding needed). */
export function base32Decode(text) {
  const clean = text.replace(/[\s=-]/g, '').toUpperCase();
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of clean) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${JSON.stringify(c)}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The RFC 6238 time step containing `ms` (milliseconds since 1970). */
export function timeStep(ms = Date.now()) {
  return Math.floor(ms / 1000 / STEP_SECONDS);
}

/** The 6-digit code for `step` (RFC 4226 HOTP with the step as counter). */
export function codeAtStep(key, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac('sha1', base32Decode(key)).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const word = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(word % 1_000_000).padStart(6, '0');
}

/** The code an authenticator app shows now, or `stepsAhead` steps later. */
export function totp(key, { stepsAhead = 0, now = Date.now() } = {}) {
  return codeAtStep(key, timeStep(now) + stepsAhead);
}
