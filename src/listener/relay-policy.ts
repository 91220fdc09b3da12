import { BlockList, isIP } from 'node:net';
import { inBlockList } from '../dns/index.js';

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
    return inBlockList(this.allow, remoteAddress);
  }
}
