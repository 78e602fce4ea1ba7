/**
 * `ltxvfs inspect` as a user runs it: a child process of the built CLI (npm test builds dist/).
 * Expected values are the golden files' known answers (test/fixtures/SOURCES.md).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flipByte } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const golden = join(root, 'test/fixtures/litestream/nullstyle-ltx-zig/tests/fixtures');
const v1 = join(
  root,
  'test/fixtures/litestream/benbjohnson-litestream/testdata/store/open-and-write-snapshot/dbs/sqlite.db/ltx/000000000000000d-000000000000000d.ltx',
);

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let tmp: TempDir;
beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build; npm test does it)`);
  tmp = await makeTempDir('ltx-inspect-');
});
afterAll(async () => {
  await tmp?.cleanup();
});

describe('ltxvfs inspect', () => {
  it('--json prints header, pages, trailer and the verdict of a golden file', async () => {
    const r = await run(['inspect', join(golden, 'go_v3_incremental.ltx'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.size).toBe(206);
    expect(doc.header).toMatchObject({
      flags: 0,
      pageSize: 512,
      commit: 3,
      minTxid: '0000000000000002',
      maxTxid: '0000000000000004',
      timestamp: -1000,
      preApplyChecksum: '8000000000001234',
      snapshot: false,
    });
    // Offsets and sizes from the byte-level walkthrough of this file (ltx-and-litestream.md 1.7).
    expect(doc.pages).toEqual([
      { pgno: 1, offset: 100, size: 34, encoding: 'lz4-block' },
      { pgno: 3, offset: 134, size: 34, encoding: 'lz4-block' },
    ]);
    expect(doc.trailer).toEqual({ postApplyChecksum: '8000000000005678', fileChecksum: 'd1f8ea546c262bd3' });
    expect(doc.verification.valid).toBe(true);
  });

  it('legacy frame pages and snapshot post-apply verification', async () => {
    const r = await run(['inspect', join(golden, 'go_v3_legacy_unflagged.ltx'), '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.pages).toEqual([{ pgno: 1, offset: 100, size: 49, encoding: 'lz4-frame' }]);
    expect(doc.verification.postApplyChecksum).toBe('verified');
    expect(doc.trailer.fileChecksum).toBe('ae80e1069c9bc795');
  });

  it('text output names the fields', async () => {
    const r = await run(['inspect', join(golden, 'go_v3_no_checksum.ltx')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/pageSize\s+4096/);
    expect(r.stdout).toMatch(/c231c44dd37c4fc6/);
    expect(r.stdout).toMatch(/valid/);
  });

  it('an invalid file exits non-zero with one line naming the file and the problem', async () => {
    const bytes = await readFile(join(golden, 'go_v3_incremental.ltx'));
    flipByte(bytes, bytes.length - 1, 0x10);
    const bad = join(tmp.dir, 'bad.ltx');
    await writeFile(bad, bytes);
    const r = await run(['inspect', bad, '--json']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('LTX_BAD_CHECKSUM');
    expect(lines[0]).toContain(bad);
  });

  it('an LTX v1 file is refused as an unsupported old version; a missing file is named', async () => {
    const r = await run(['inspect', v1]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/LTX_UNSUPPORTED_VERSION.*old LTX version/);
    const m = await run(['inspect', join(tmp.dir, 'nope.ltx')]);
    expect(m.code).not.toBe(0);
    expect(m.stderr).toContain('nope.ltx');
  });
});
