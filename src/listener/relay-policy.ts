import { BlockList, isIP } from 'node:net';

/** Who may relay without AUTH: the networks in config/relay_acl_allow. Everyone else authenticates. */
export class RelayPolicy {
  private readonly allow = new BlockList();

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const [net, bits] = cidr.split('/');
      this.allow.addSubnet(net, Number(bits), isIP(net) === 6 ? 'ipv6' : 'ipv4');
    }
  }

  allows(remoteAddress: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress);
    const address = mapped ? mapped[1] : remoteAddress;
    const family = isIP(address);
    if (family === 0) return false;
    return this.allow.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }
}
