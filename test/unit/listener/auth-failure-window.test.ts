import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuthFailureWindow, clientKey } from '../../../src/listener/auth-failure-window.js';

const limits = { failures: 3, windowMs: 60_000, lockoutMs: 300_000 };

describe('AuthFailureWindow', () => {
  it('locks an address out after N failures within the window, for the lockout time', () => {
    const w = new AuthFailureWindow();
    assert.equal(w.fail('192.0.2.1', 0, limits), false);
    assert.equal(w.fail('192.0.2.1', 1000, limits), false);
    assert.equal(w.lockedUntil('192.0.2.1', 1000), undefined);
    assert.equal(w.fail('192.0.2.1', 2000, limits), true);
    assert.equal(w.lockedUntil('192.0.2.1', 2001), 302_000);
    assert.equal(w.lockedUntil('192.0.2.2', 2001), undefined, 'another address is not locked');
    assert.equal(w.lockedUntil('192.0.2.1', 302_000), undefined, 'the lockout ends');
  });

  it('starts counting again when the window has passed', () => {
    const w = new AuthFailureWindow();
    w.fail('192.0.2.1', 0, limits);
    w.fail('192.0.2.1', 1000, limits);
    assert.equal(w.fail('192.0.2.1', 61_000, limits), false);
    assert.equal(w.lockedUntil('192.0.2.1', 61_000), undefined);
  });

  it('counts an IPv6 /64 as one client, and an IPv4-mapped address as its IPv4 address', () => {
    assert.equal(clientKey('2001:db8:1:2::1'), clientKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
    assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
    const w = new AuthFailureWindow();
    for (let i = 1; i <= 3; i++) w.fail(`2001:db8::${i}`, i, limits);
    assert.notEqual(w.lockedUntil('2001:db8::99', 10), undefined);
  });

  it('keeps memory bounded: expired entries go, and the least recently touched goes when full', () => {
    const w = new AuthFailureWindow(100);
    for (let i = 0; i < 1000; i++) w.fail(`10.0.${i >> 8}.${i & 255}`, i, limits);
    assert.equal(w.size, 100, 'never more than the bound');
    w.fail('192.0.2.1', 10_000_000, limits);
    assert.equal(w.size, 1, 'entries whose window and lockout are over are dropped');
  });
});
