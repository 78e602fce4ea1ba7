import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type BenchReport, renderColdChart, renderColdSummary, writeReport } from '../bench/report.js';
import { findTables } from '../bench/sections-external.js';
import { defined } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/** The benchmark's report writer: what the README quotes must be what was measured. */
function sampleReport(): BenchReport {
  const rows = [
    {
      dataset: '8 MiB',
      query: 'point lookup',
      approach: 'ltxvfs',
      'ms (median)': 300,
      requests: 13,
      'bytes read': '1 KiB',
    },
    {
      dataset: '8 MiB',
      query: 'point lookup',
      approach: 'restore',
      'ms (median)': 1200,
      requests: 9,
      'bytes read': '8 MiB',
    },
    {
      dataset: '8 MiB',
      query: 'full scan',
      approach: 'ltxvfs',
      'ms (median)': 800,
      requests: 20,
      'bytes read': '8 MiB',
    },
    {
      dataset: '8 MiB',
      query: 'full scan',
      approach: 'restore',
      'ms (median)': null,
      requests: null,
      'bytes read': 'not run: est. 60 s',
    },
  ];
  return {
    mode: 'quick',
    command: 'npm run bench -- --quick',
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:04:00.000Z',
    machine: {
      cpuModel: 'cpu',
      cpus: 2,
      memoryBytes: 2 ** 34,
      platform: 'linux',
      release: 'x',
      arch: 'x64',
      node: 'v20',
    },
    settings: { rttMs: 20, bandwidth: 'unlimited' },
    sections: [
      {
        id: 'cold',
        title: 'Cold open to first row',
        columns: ['dataset', 'query', 'approach', 'ms (median)', 'requests', 'bytes read'],
        rows,
      },
      { id: 'x', title: 'Broken one', columns: [], rows: [], skipped: 'failed: boom | pipe' },
    ],
    cold: [
      { group: 'point, 8 MiB', approach: 'ltxvfs', ms: 300, requests: 13 },
      { group: 'point, 8 MiB', approach: 'restore', ms: 1200, requests: 9 },
      { group: 'full scan, 8 MiB', approach: 'ltxvfs', ms: 800, requests: 20 },
      { group: 'full scan, 8 MiB', approach: 'restore', ms: 0, requests: 0, skipped: 'not run (~60 s)' },
    ],
  };
}

describe('bench report', () => {
  const temps: TempDir[] = [];
  afterAll(async () => {
    for (const t of temps) await t.cleanup();
  });

  it('writes JSON, Markdown and SVG with the same numbers', async () => {
    const temp = await makeTempDir('ltxvfs-report-');
    temps.push(temp);
    const report = sampleReport();
    const files = await writeReport(report, temp.dir, 'r');
    expect(files.map((f) => path.basename(f))).toEqual(['r.json', 'r.md', 'r.svg']);
    expect(JSON.parse(await readFile(defined(files[0]), 'utf8'))).toEqual(report);
    const md = await readFile(defined(files[1]), 'utf8');
    expect(md).toContain('- Command: `npm run bench -- --quick`');
    expect(md).toContain('| 8 MiB | point lookup | ltxvfs | 300 | 13 | 1 KiB |');
    expect(md).toContain('| 8 MiB | full scan | restore | - | - | not run: est. 60 s |');
    expect(md).toContain('Not run: failed: boom | pipe');
    expect(md).toContain('![cold reads](r.svg)');
  });

  it('pivots the cold table to one row per dataset and query', () => {
    const summary = renderColdSummary(sampleReport());
    expect(summary.split('\n')).toEqual([
      '## Summary: cold open to first row, ms (requests to the store)',
      '',
      '| dataset | query | ltxvfs | restore |',
      '| --- | --- | --- | --- |',
      '| 8 MiB | point lookup | 300 ms (13 req) | 1,200 ms (9 req) |',
      '| 8 MiB | full scan | 800 ms (20 req) | not run: est. 60 s |',
      '',
    ]);
  });

  it('draws one bar per measured point per panel, and the reason where a baseline did not run', () => {
    const svg = renderColdChart(sampleReport().cold, 'title <&>');
    expect(svg.startsWith('<svg ')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('title &lt;&amp;&gt;');
    const bars = [...svg.matchAll(/<rect class="bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g)];
    expect(bars).toHaveLength(3 * 2); // 3 measured points, 2 panels
    expect(svg.match(/not run \(~60 s\)/g)).toHaveLength(2);
    // log scale: 1200 ms is drawn longer than 300 ms
    const widths = bars.map((m) => Number(m[1]));
    expect(defined(widths[1])).toBeGreaterThan(defined(widths[0]));
  });

  it('finds the flat tables inside another suite result, and only those', () => {
    const tables = findTables({
      markdown: 'x',
      lag: [{ p50: 1, ok: true }],
      nested: { rows: [{ a: 'b' }] },
      deep: [{ x: { y: 1 } }],
    });
    expect(tables).toEqual([
      { at: 'lag', rows: [{ p50: 1, ok: 'yes' }] },
      { at: 'nested.rows', rows: [{ a: 'b' }] },
    ]);
  });
});
