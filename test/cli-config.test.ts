import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile, parseCompactionFlags, parseConfigText } from '../src/cli/config.js';
import { formatRequestStats } from '../src/cli/request-stats.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { DEFAULT_COMPACTION_CONFIG } from '../src/writer/compaction/compaction-config.js';
import { defined } from './support/defined.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;

function configError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    if (isLtxvfsError(err, 'CONFIG_INVALID')) return err.message;
    throw err;
  }
  throw new Error('expected CONFIG_INVALID, got success');
}

describe('parseCompactionFlags', () => {
  it('keeps Litestream defaults when no flag is given', () => {
    expect(parseCompactionFlags({})).toEqual({
      levels: [30 * S, 5 * M, 1 * H],
      snapshotIntervalMs: 24 * H,
      retentionMs: 24 * H,
      l0RetentionMs: 5 * M,
      retentionEnabled: true,
      l0RetentionCheckIntervalMs: 15 * S,
    });
  });

  it('reads every flag', () => {
    const c = parseCompactionFlags({
      levels: '10s, 1m,1m,2h',
      snapshotInterval: '6h',
      retention: '72h',
      l0Retention: '90s',
    });
    expect(c.levels).toEqual([10 * S, 1 * M, 1 * M, 2 * H]);
    expect(c.snapshotIntervalMs).toBe(6 * H);
    expect(c.retentionMs).toBe(72 * H);
    expect(c.l0RetentionMs).toBe(90 * S);
    expect(c.retentionEnabled).toBe(true);
  });

  it('--no-retention switches deletes off and keeps the retention value', () => {
    const c = parseCompactionFlags({ retention: false });
    expect(c.retentionEnabled).toBe(false);
    expect(c.retentionMs).toBe(24 * H);
  });

  it('l0-retention may be zero', () => {
    expect(parseCompactionFlags({ l0Retention: '0' }).l0RetentionMs).toBe(0);
  });

  it.each([
    [{ levels: '30s,5m,1m' }, /--levels\[2\] \(L3\).*shorter than L2/],
    [{ levels: '1s,2s,3s,4s,5s,6s,7s,8s,9s' }, /--levels has 9 intervals; at most 8/],
    [{ levels: '30s,,1h' }, /--levels: interval 2 is empty/],
    [{ levels: '30s,-5m' }, /--levels \(L2\): invalid duration "-5m"/],
    [{ levels: '0s' }, /--levels\[0\] \(L1\) must be a positive duration/],
    [{ snapshotInterval: '-1h' }, /--snapshot-interval: invalid duration "-1h"/],
    [{ snapshotInterval: '0' }, /--snapshot-interval must be a positive duration/],
    [{ retention: 'soon' }, /--retention: invalid duration "soon"/],
    [{ l0Retention: '5 minutes' }, /--l0-retention: invalid duration/],
  ])('rejects %o', (flags, message) => {
    expect(configError(() => parseCompactionFlags(flags))).toMatch(message);
  });
});

describe('config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ltxvfs-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ltxvfs.yml');

  it('reads several databases, top-level defaults, both level spellings, relative paths', () => {
    writeFileSync(
      file,
      [
        'levels: [10s, 1m]',
        'snapshot: { interval: 1h }',
        'sync-interval: 2s',
        'dbs:',
        '  - path: app.db',
        '    replica:',
        '      url: s3://bucket/app?endpoint=http://127.0.0.1:7480',
        '  - path: /var/lib/other.db',
        '    replica: { url: "file:///backups/other", sync-interval: 500ms }',
        '    levels:',
        '      - interval: 30s',
        '      - interval: 5m',
        '      - interval: 1h',
        '    snapshot: { interval: 12h, retention: 48h }',
        '    l0-retention: 10m',
        '    l0-retention-check-interval: 30s',
        '    retention: { enabled: false }',
        '',
      ].join('\n'),
    );
    const config = loadConfigFile(file);
    expect(config.file).toBe(file);
    expect(config.dbs).toEqual([
      {
        path: join(dir, 'app.db'),
        replicaUrl: 's3://bucket/app?endpoint=http://127.0.0.1:7480',
        syncIntervalMs: 2 * S,
        compaction: {
          levels: [10 * S, 1 * M],
          snapshotIntervalMs: 1 * H,
          retentionMs: 24 * H,
          l0RetentionMs: 5 * M,
          retentionEnabled: true,
          l0RetentionCheckIntervalMs: 15 * S,
        },
      },
      {
        path: '/var/lib/other.db',
        replicaUrl: 'file:///backups/other',
        syncIntervalMs: 500,
        compaction: {
          levels: [30 * S, 5 * M, 1 * H],
          snapshotIntervalMs: 12 * H,
          retentionMs: 48 * H,
          l0RetentionMs: 10 * M,
          retentionEnabled: false,
          l0RetentionCheckIntervalMs: 30 * S,
        },
      },
    ]);
    // The defaults object itself was not modified by either db.
    expect(DEFAULT_COMPACTION_CONFIG.levels).toEqual([30 * S, 5 * M, 1 * H]);
  });

  it('expands $' + '{VAR} from the environment', () => {
    const c = parseConfigText(
      `dbs: [{ path: /a.db, replica: { url: "s3://\${BUCKET}/a" } }]\n`,
      '/etc/x.yml',
      {
        BUCKET: 'prod',
      },
    );
    expect(defined(c.dbs[0]).replicaUrl).toBe('s3://prod/a');
  });

  const bad: Array<[string, RegExp]> = [
    [
      'dbs: [{ path: /a.db, replica: { url: s3://b/a }, snapshot: { intervall: 1h } }]',
      /dbs\[0\]\.snapshot\.intervall: unknown key/,
    ],
    ['dbz: []', /dbz: unknown key/],
    [
      'dbs: [{ path: /a.db, replica: { url: s3://b/a }, levels: [30s, 5m, 1m] }]',
      /dbs\[0\]\.levels\[2\] \(L3\).*shorter than L2/,
    ],
    [
      'dbs: [{ path: /a.db, replica: { url: s3://b/a }, l0-retention: -5m }]',
      /dbs\[0\]\.l0-retention: negative duration "-5m"/,
    ],
    [
      'dbs: [{ path: /a.db, replica: { url: s3://b/a }, levels: [1s,2s,3s,4s,5s,6s,7s,8s,9s] }]',
      /dbs\[0\]\.levels has 9 intervals/,
    ],
    [
      'dbs: [{ path: /a.db, replica: { url: s3://b/a }, sync-interval: 0 }]',
      /dbs\[0\]\.sync-interval: must be a positive/,
    ],
    [
      'dbs: [{ path: /a.db, replica: { url: s3://b/a }, retention: { enabled: "no" } }]',
      /dbs\[0\]\.retention\.enabled: must be true or false/,
    ],
    ['dbs: [{ path: /a.db }]', /dbs\[0\]\.replica: is required/],
    [
      'dbs: [{ path: /a.db, replica: { url: s3://b/a } }, { path: /a.db, replica: { url: s3://b/c } }]',
      /dbs\[1\]\.path: database \/a\.db is listed twice/,
    ],
    ['dbs: []', /dbs: must list at least one database/],
    [
      'snapshot: { interval: 1 hour }\ndbs: [{ path: /a.db, replica: { url: s3://b/a } }]',
      /snapshot\.interval: invalid duration "1 hour"/,
    ],
    [
      `dbs: [{ path: /a.db, replica: { url: "s3://\${NOPE_NOT_SET}/a" } }]`,
      /\$\{NOPE_NOT_SET\}: environment variable is not set/,
    ],
    ['dbs: [{ path: /a.db, replica: { url: s3://b/a }, path: /b.db }]', /YAML/],
  ];
  it.each(bad)('rejects %s', (text, message) => {
    writeFileSync(file, text);
    const msg = configError(() => loadConfigFile(file, {}));
    expect(msg).toMatch(message);
    expect(msg.startsWith(`${file}: `)).toBe(true);
  });

  it('names a missing file', () => {
    expect(configError(() => loadConfigFile(join(dir, 'missing.yml')))).toMatch(
      /missing\.yml: cannot read config file/,
    );
  });
});

describe('formatRequestStats', () => {
  it('prints every request kind and bytes in one line', () => {
    const line = formatRequestStats({
      put: 3,
      get: 40,
      list: 7,
      delete: 2,
      head: 0,
      bytesRead: 1536,
      bytesWritten: 5 * 1024 * 1024,
    });
    expect(line).toBe('requests: 3 PUT, 40 GET, 7 LIST, 2 DELETE, 0 HEAD; 5.0 MiB written, 1.5 KiB read');
    expect(line).not.toContain('\n');
  });
});
