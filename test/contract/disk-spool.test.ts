import { tempDir } from '../helpers/temp-dir.js';
import { join } from 'node:path';
import { DiskSpool } from '../../src/spool/index.js';
import { spoolContract } from './spool-contract.js';

spoolContract('DiskSpool', (dir) => new DiskSpool(dir), () => join(tempDir('tern-spool-'), 'queue'));
