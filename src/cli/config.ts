import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { parseDuration } from '../util/duration.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import {
  type CompactionConfig,
  DEFAULT_COMPACTION_CONFIG,
  DEFAULT_L0_RETENTION_CHECK_INTERVAL_MS,
  FLAG_NAMES,
  validateCompactionConfig,
} from '../writer/compaction/compaction-config.js';

/** The compaction options of `ltxvfs replicate`, as commander hands them over. */
export interface CompactionFlags {
  levels?: string;
  snapshotInterval?: string;
  /** A duration from `--retention D`, or false from `--no-retention`. */
  retention?: string | boolean;
  l0Retention?: string;
}

/**
 * Flags -> CompactionConfig; missing flags keep Litestream's defaults. Errors are CONFIG_INVALID
 * naming the flag.
 */
export function parseCompactionFlags(
  flags: CompactionFlags,
  base: CompactionConfig = DEFAULT_COMPACTION_CONFIG,
): CompactionConfig {
  const config: CompactionConfig = { ...base, levels: [...base.levels] };
  const duration = (text: string, flag: string): number => {
    try {
      return parseDuration(text, flag);
    } catch (err) {
      throw asConfigError(err, `${flag}: invalid duration "${text}"`);
    }
  };
  if (flags.levels !== undefined) {
    const parts = flags.levels.split(',').map((s) => s.trim());
    config.levels = parts.map((part, i) => {
      if (part === '')
        throw new LtxvfsError('CONFIG_INVALID', `--levels: interval ${i + 1} is empty in "${flags.levels}"`);
      return duration(part, `--levels (L${i + 1})`);
    });
  }
  if (flags.snapshotInterval !== undefined)
    config.snapshotIntervalMs = duration(flags.snapshotInterval, '--snapshot-interval');
  if (flags.retention === false) config.retentionEnabled = false;
  else if (typeof flags.retention === 'string') config.retentionMs = duration(flags.retention, '--retention');
  if (flags.l0Retention !== undefined) config.l0RetentionMs = duration(flags.l0Retention, '--l0-retention');
  return validateCompactionConfig(config, 'replicate', FLAG_NAMES);
}

/** One database of a config file. */
export interface DbReplicationConfig {
  /** Absolute path of the primary database (relative paths are resolved against the file's directory). */
  path: string;
  replicaUrl: string;
  syncIntervalMs?: number;
  compaction: CompactionConfig;
}

export interface ReplicationConfigFile {
  /** The file it came from, absolute. */
  file: string;
  dbs: DbReplicationConfig[];
}

// Keys allowed at the top level (defaults for every db) and per db. Litestream accepts both
// places for the compaction settings; so do we.
const SHARED_KEYS = [
  'levels',
  'snapshot',
  'l0-retention',
  'l0-retention-check-interval',
  'retention',
] as const;
const TOP_KEYS = new Set<string>(['dbs', 'sync-interval', ...SHARED_KEYS]);
const DB_KEYS = new Set<string>(['path', 'replica', 'sync-interval', ...SHARED_KEYS]);
const REPLICA_KEYS = new Set(['url', 'sync-interval']);
const SNAPSHOT_KEYS = new Set(['interval', 'retention']);
const RETENTION_KEYS = new Set(['enabled']);
const LEVEL_KEYS = new Set(['interval']);

type Yaml = unknown;

/**
 * Reads a YAML file in the spirit of litestream.yml:
 * ```yaml
 * levels: [30s, 5m, 1h]            # optional defaults for every db
 * dbs:
 *   - path: app.db
 *     replica: { url: s3://bucket/app }
 *     sync-interval: 1s
 *     levels: [{ interval: 30s }, { interval: 5m }]
 *     snapshot: { interval: 24h, retention: 24h }
 *     l0-retention: 5m
 *     retention: { enabled: true }
 * ```
 * `${NAME}` is replaced by the environment variable NAME (unset -> error). Any problem is one
 * CONFIG_INVALID naming the file and the key, e.g. `ltxvfs.yml: dbs[0].snapshot.intervall: unknown key`.
 */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): ReplicationConfigFile {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LtxvfsError('CONFIG_INVALID', `${file}: cannot read config file: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseConfigText(text, file, env);
}

/** The parser behind loadConfigFile; `file` is only used for messages and relative paths. */
export function parseConfigText(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): ReplicationConfigFile {
  const fail = (key: string, why: string): never => {
    throw new LtxvfsError('CONFIG_INVALID', `${file}: ${key}: ${why}`);
  };
  const expanded = text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
    const value = env[name];
    if (value === undefined) fail(`\${${name}}`, 'environment variable is not set');
    return value as string;
  });
  const doc = parseDocument(expanded, { uniqueKeys: true });
  const [firstError] = doc.errors;
  if (firstError !== undefined) fail('YAML', firstError.message.split('\n')[0] ?? '');
  const root: Yaml = doc.toJS();

  const mapping = (value: Yaml, key: string, allowed: Set<string>): Record<string, Yaml> => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(key, 'must be a mapping');
    const obj = value as Record<string, Yaml>;
    for (const k of Object.keys(obj)) {
      if (!allowed.has(k))
        fail(key ? `${key}.${k}` : k, `unknown key (expected one of: ${[...allowed].join(', ')})`);
    }
    return obj;
  };
  const str = (value: Yaml, key: string): string => {
    if (typeof value !== 'string' || value.trim() === '') fail(key, 'must be a non-empty string');
    return value as string;
  };
  const duration = (value: Yaml, key: string): number => {
    if (typeof value === 'number' && value === 0) return 0;
    const text = typeof value === 'number' ? String(value) : str(value, key);
    if (text.trim().startsWith('-')) fail(key, `negative duration "${text}"`);
    try {
      return parseDuration(text, key);
    } catch {
      return fail(key, `invalid duration "${text}" (expected e.g. 500ms, 1s, 5m, 24h)`);
    }
  };
  const bool = (value: Yaml, key: string): boolean => {
    if (typeof value !== 'boolean') fail(key, 'must be true or false');
    return value as boolean;
  };

  /** Applies the shared compaction keys of `obj` on top of `base`. */
  const compactionFrom = (
    obj: Record<string, Yaml>,
    prefix: string,
    base: CompactionConfig,
  ): CompactionConfig => {
    const out: CompactionConfig = { ...base, levels: [...base.levels] };
    const at = (k: string) => (prefix ? `${prefix}.${k}` : k);
    if (obj.levels !== undefined) {
      if (!Array.isArray(obj.levels)) fail(at('levels'), 'must be a list of intervals');
      out.levels = (obj.levels as Yaml[]).map((entry, i) => {
        const key = `${at('levels')}[${i}]`;
        if (entry !== null && typeof entry === 'object') {
          const level = mapping(entry, key, LEVEL_KEYS);
          if (level.interval === undefined) fail(`${key}.interval`, 'is required');
          return duration(level.interval, `${key}.interval`);
        }
        return duration(entry, key);
      });
    }
    if (obj.snapshot !== undefined) {
      const snap = mapping(obj.snapshot, at('snapshot'), SNAPSHOT_KEYS);
      if (snap.interval !== undefined)
        out.snapshotIntervalMs = duration(snap.interval, at('snapshot.interval'));
      if (snap.retention !== undefined) out.retentionMs = duration(snap.retention, at('snapshot.retention'));
    }
    if (obj['l0-retention'] !== undefined)
      out.l0RetentionMs = duration(obj['l0-retention'], at('l0-retention'));
    if (obj['l0-retention-check-interval'] !== undefined) {
      out.l0RetentionCheckIntervalMs = duration(
        obj['l0-retention-check-interval'],
        at('l0-retention-check-interval'),
      );
    }
    if (obj.retention !== undefined) {
      const ret = mapping(obj.retention, at('retention'), RETENTION_KEYS);
      if (ret.enabled !== undefined) out.retentionEnabled = bool(ret.enabled, at('retention.enabled'));
    }
    try {
      return validateCompactionConfig(out, file);
    } catch (err) {
      // Name the key path of the db the bad value belongs to.
      if (isLtxvfsError(err, 'CONFIG_INVALID') && prefix) {
        throw new LtxvfsError('CONFIG_INVALID', err.message.replace(`${file}: `, `${file}: ${prefix}.`));
      }
      throw err;
    }
  };

  const top = mapping(root ?? {}, '', TOP_KEYS);
  const defaults = compactionFrom(top, '', {
    ...DEFAULT_COMPACTION_CONFIG,
    levels: [...DEFAULT_COMPACTION_CONFIG.levels],
    l0RetentionCheckIntervalMs: DEFAULT_L0_RETENTION_CHECK_INTERVAL_MS,
  });
  const topSync =
    top['sync-interval'] === undefined ? undefined : positiveDuration(top['sync-interval'], 'sync-interval');
  if (!Array.isArray(top.dbs) || top.dbs.length === 0) fail('dbs', 'must list at least one database');
  const seen = new Set<string>();
  const dbs = (top.dbs as Yaml[]).map((entry, i): DbReplicationConfig => {
    const key = `dbs[${i}]`;
    const db = mapping(entry, key, DB_KEYS);
    const dbPath = str(db.path, `${key}.path`);
    const absolute = isAbsolute(dbPath) ? dbPath : resolve(dirname(file), dbPath);
    if (seen.has(absolute)) fail(`${key}.path`, `database ${absolute} is listed twice`);
    seen.add(absolute);
    if (db.replica === undefined) fail(`${key}.replica`, 'is required (replica: { url: ... })');
    const replica = mapping(db.replica, `${key}.replica`, REPLICA_KEYS);
    const replicaUrl = str(replica.url, `${key}.replica.url`);
    let syncIntervalMs = topSync;
    if (db['sync-interval'] !== undefined)
      syncIntervalMs = positiveDuration(db['sync-interval'], `${key}.sync-interval`);
    if (replica['sync-interval'] !== undefined) {
      syncIntervalMs = positiveDuration(replica['sync-interval'], `${key}.replica.sync-interval`);
    }
    const compaction = compactionFrom(db, key, defaults);
    return {
      path: absolute,
      replicaUrl,
      ...(syncIntervalMs === undefined ? {} : { syncIntervalMs }),
      compaction,
    };
  });
  return { file, dbs };

  function positiveDuration(value: Yaml, key: string): number {
    const ms = duration(value, key);
    if (ms <= 0) fail(key, 'must be a positive duration');
    return ms;
  }
}

function asConfigError(err: unknown, message: string): LtxvfsError {
  if (isLtxvfsError(err, 'CONFIG_INVALID')) return err;
  return new LtxvfsError('CONFIG_INVALID', message, { cause: err });
}
