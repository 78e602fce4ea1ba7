/**
 * Every object of a file replica gets the same file mode, the one a new file gets from the
 * umask, whether it was written from memory (L0) or copied from a local file (compaction output
 * and snapshots, whose private temp files are 0600). Modes are read back with stat.
 */
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeLtxFile, litestreamHeader } from '../src/ltx/index.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

let tmp: TempDir;
let client: ReplicaClient;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-file-mode-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
});

afterAll(async () => {
  await client?.close();
  await tmp?.cleanup();
});

function ltx(minTxid: number, maxTxid: number): Uint8Array {
  const header = litestreamHeader({
    minTxid,
    maxTxid,
    pageSize: 4096,
    commit: 1,
    timestamp: Date.UTC(2026, 0, 1),
  });
  return encodeLtxFile(header, [{ pgno: 1, data: new Uint8Array(4096).fill(1) }]);
}

describe('file replica object modes', () => {
  it('an object copied from a private 0600 file gets the mode of one written from memory', async () => {
    const probe = join(tmp.dir, 'probe');
    writeFileSync(probe, 'x');
    const expected = statSync(probe).mode & 0o777;
    const fromMemory = await client.writeFile({ level: 0, minTxid: 1, maxTxid: 1 }, ltx(1, 1), {
      timestamp: new Date(Date.UTC(2026, 0, 1)),
    });
    const source = join(tmp.dir, 'snapshot.tmp');
    const bytes = ltx(1, 1);
    writeFileSync(source, bytes);
    chmodSync(source, 0o600);
    const copied = await client.writeFileFrom(
      { level: 9, minTxid: 1, maxTxid: 1 },
      { path: source, size: bytes.length },
      { timestamp: new Date(Date.UTC(2026, 0, 1)) },
    );
    const modeOf = (level: number) =>
      statSync(join(tmp.dir, 'replica', 'ltx', String(level), '0000000000000001-0000000000000001.ltx')).mode &
      0o777;
    expect(fromMemory.level).toBe(0);
    expect(copied.level).toBe(9);
    expect(modeOf(0)).toBe(expected);
    expect(modeOf(9)).toBe(expected);
  });
});
