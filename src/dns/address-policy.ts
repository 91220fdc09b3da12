import { BlockList, isIP } from 'node:net';

// Addresses an MX must not point to unless local_mx_ok: delivering there would loop back
// into this host or leak mail into a private network (Haraka's local_mx_ok rule).
const LOCAL = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const) {
  LOCAL.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
] as const) {
  LOCAL.addSubnet(net, bits, 'ipv6');
}

/** Whether an address falls in a BlockList, an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counting as IPv4. */
export function inBlockList(list: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped ? mapped[1] : address;
  const family = isIP(plain);
  if (family === 0) return false;
  return list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
}

export function isLocalAddress(address: string): boolean {
  return inBlockList(LOCAL, address);
}
