import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { AuthUser } from '../config/index.js';

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;
const KEY_LENGTH = 32;

/** Makes the `scrypt$<salt>$<key>` form that config/auth_users holds. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, KEY_LENGTH);
  return `scrypt$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(user: AuthUser | undefined, password: string): Promise<boolean> {
  // A missing user still costs one scrypt, so that timing does not reveal which users exist.
  const [, saltB64, keyB64] = (user?.hash ?? `scrypt$${randomBytes(16).toString('base64')}$${Buffer.alloc(KEY_LENGTH).toString('base64')}`).split('$');
  const expected = Buffer.from(keyB64, 'base64');
  const actual = await scryptAsync(password, Buffer.from(saltB64, 'base64'), expected.length || KEY_LENGTH);
  return user !== undefined && expected.length === actual.length && timingSafeEqual(expected, actual);
}
