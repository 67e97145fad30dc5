import { ImageInputError } from './errors.js';

const BASE64_BODY = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** True when `s` (whitespace ignored) is syntactically base64 or base64url. */
export function looksLikeBase64(s: string): boolean {
  const body = s.replace(/\s+/g, '');
  return body.length >= 4 && body.length % 4 !== 1 && BASE64_BODY.test(body);
}

/** Decodes base64 or base64url (padding optional) without Node's Buffer, so it also runs in browsers. */
export function decodeBase64(s: string): Uint8Array {
  const body = s.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/');
  if (!BASE64_BODY.test(body) || body.length % 4 === 1) throw new ImageInputError('bad-input', 'invalid base64 image data');
  const padded = body + '='.repeat((4 - (body.length % 4)) % 4);
  let bin: string;
  try {
    bin = atob(padded);
  } catch (e) {
    throw new ImageInputError('bad-input', 'invalid base64 image data', { cause: e });
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
