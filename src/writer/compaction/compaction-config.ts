import { LtxvfsError } from '../../util/errors.js';

/** Highest level compaction may use; level 9 is reserved for snapshots (Litestream's rule). */
export const MAX_COMPACTION_LEVELS = 8;
export { SNAPSHOT_LEVEL } from '../../ltx/names.js';

/** When and what the writer compacts, snapshots and deletes. All durations in milliseconds. */
export interface CompactionConfig {
  /** Intervals of L1..Ln (n <= 8), each at least as long as the one below. */
  levels: number[];
  /** How often a full L9 snapshot `1-N` is written. */
  snapshotIntervalMs: number;
  /** Snapshots older than this are deleted (the newest is always kept). */
  retentionMs: number;
  /** L0 files already compacted into L1 are kept at least this long (for readers in flight). */
  l0RetentionMs: number;
  /** false: never delete anything (leave expiry to bucket lifecycle rules). */
  retentionEnabled: boolean;
  /** How often L0 retention runs. */
  l0RetentionCheckIntervalMs?: number;
}

/** Litestream v0.5's defaults (ltx-and-litestream.md section 2.2). */
export const DEFAULT_COMPACTION_CONFIG: Readonly<CompactionConfig> = Object.freeze({
  levels: [30_000, 5 * 60_000, 60 * 60_000],
  snapshotIntervalMs: 24 * 3_600_000,
  retentionMs: 24 * 3_600_000,
  l0RetentionMs: 5 * 60_000,
  retentionEnabled: true,
  l0RetentionCheckIntervalMs: 15_000,
});

export const DEFAULT_L0_RETENTION_CHECK_INTERVAL_MS = 15_000;

/** How the keys are spelled where the values came from (YAML keys or CLI flags). */
export interface KeyNames {
  levels: string;
  snapshotInterval: string;
  retention: string;
  l0Retention: string;
  l0RetentionCheckInterval: string;
  retentionEnabled: string;
}

export const YAML_KEY_NAMES: KeyNames = {
  levels: 'levels',
  snapshotInterval: 'snapshot.interval',
  retention: 'snapshot.retention',
  l0Retention: 'l0-retention',
  l0RetentionCheckInterval: 'l0-retention-check-interval',
  retentionEnabled: 'retention.enabled',
};

export const FLAG_NAMES: KeyNames = {
  levels: '--levels',
  snapshotInterval: '--snapshot-interval',
  retention: '--retention',
  l0Retention: '--l0-retention',
  l0RetentionCheckInterval: 'l0-retention-check-interval',
  retentionEnabled: '--no-retention',
};

/**
 * Rejects a configuration that would silently misbehave. `where` prefixes every message so the
 * user learns which flag or which file and key is wrong, e.g. `ltxvfs.yml: dbs[0].levels[1]`.
 */
export function validateCompactionConfig(
  config: CompactionConfig,
  where = 'configuration',
  names: KeyNames = YAML_KEY_NAMES,
): CompactionConfig {
  const fail = (key: string, why: string): never => {
    throw new LtxvfsError('CONFIG_INVALID', `${where}: ${key} ${why}`);
  };
  const positive = (key: string, value: number) => {
    if (!Number.isFinite(value) || value <= 0) fail(key, `must be a positive duration (got ${value} ms)`);
  };
  if (!Array.isArray(config.levels) || config.levels.length === 0)
    fail(names.levels, 'must list at least one interval');
  if (config.levels.length > MAX_COMPACTION_LEVELS) {
    fail(
      names.levels,
      `has ${config.levels.length} intervals; at most ${MAX_COMPACTION_LEVELS} levels (L9 is snapshots)`,
    );
  }
  config.levels.forEach((interval, i) => {
    positive(`${names.levels}[${i}] (L${i + 1})`, interval);
    const below = config.levels[i - 1];
    if (below !== undefined && interval < below) {
      fail(
        `${names.levels}[${i}] (L${i + 1})`,
        `interval ${interval} ms is shorter than L${i}'s ${below} ms`,
      );
    }
  });
  positive(names.snapshotInterval, config.snapshotIntervalMs);
  positive(names.retention, config.retentionMs);
  if (!Number.isFinite(config.l0RetentionMs) || config.l0RetentionMs < 0) {
    fail(names.l0Retention, `must not be negative (got ${config.l0RetentionMs} ms)`);
  }
  if (config.l0RetentionCheckIntervalMs !== undefined) {
    positive(names.l0RetentionCheckInterval, config.l0RetentionCheckIntervalMs);
  }
  if (typeof config.retentionEnabled !== 'boolean') fail(names.retentionEnabled, 'must be true or false');
  return config;
}
