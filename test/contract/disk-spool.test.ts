import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskSpool } from '../../src/spool/index.js';
import { spoolContract } from './spool-contract.js';

spoolContract('DiskSpool', (dir) => new DiskSpool(dir), () => join(mkdtempSync(join(tmpdir(), 'tern-spool-')), 'queue'));
