// Unguessable identifiers: socket access tokens, file access keys, API keys and secrets.
import { randomBytes, randomUUID } from 'node:crypto';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `length` characters of [A-Za-z0-9], uniformly (rejection sampling: 30 characters ≈ 178 bits). */
export function randomToken(length = 30): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += ALPHANUMERIC[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** 32 hex characters, as Wiro's file and folder ids look. */
export function hexId(): string {
  return randomBytes(16).toString('hex');
}

export { randomUUID };
