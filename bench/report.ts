import { mkdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * The benchmark report: one JSON document, the same numbers as Markdown tables, and an SVG chart
 * of cold-read latency and requests per approach. Everything a reader needs to judge the numbers
 * (machine, Node version, settings, the command) travels with them.
 */
export type Cell = string | number | null;

export interface BenchSection {
  id: string;
  title: string;
  /** What was measured and against what; shown above the table. */
  note?: string;
  columns: string[];
  rows: Array<Record<string, Cell>>;
  /** Set when the section could not run; the reason is printed instead of a table. */
  skipped?: string;
  /** Anything else worth keeping in the JSON (raw samples, the sub-bench's own result). */
  raw?: unknown;
}

/** One bar pair of the chart: a workload on a dataset, served one way. */
export interface ColdPoint {
  /** e.g. "point lookup, 10 MiB" */
  group: string;
  /** e.g. "ltxvfs", "per-page (Litestream VFS)", "full restore + query" */
  approach: string;
  ms: number;
  requests: number;
  /** Not measured (e.g. would take minutes); drawn as this text instead of a bar. */
  skipped?: string;
}

export interface MachineInfo {
  cpuModel: string;
  cpus: number;
  memoryBytes: number;
  platform: string;
  release: string;
  arch: string;
  node: string;
  /** 1-minute load average when the run started and ended: other work on the machine skews timings. */
  loadAverage?: { start: number; end: number };
}

export interface BenchReport {
  mode: 'quick' | 'full';
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  settings: Record<string, Cell>;
  sections: BenchSection[];
  cold: ColdPoint[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    memoryBytes: os.totalmem(),
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
    node: process.version,
  };
}

/** Writes `<base>.json`, `<base>.md` and `<base>.svg` (each via a temp name + rename). */
export async function writeReport(report: BenchReport, dir: string, base: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const outputs: Array<[string, string]> = [
    [`${base}.json`, `${JSON.stringify(report, null, 2)}\n`],
    [`${base}.md`, renderMarkdown(report, `${base}.svg`)],
    [
      `${base}.svg`,
      renderColdChart(report.cold, `ltxvfs cold reads (${report.mode}, RTT ${report.settings.rttMs} ms)`),
    ],
  ];
  const written: string[] = [];
  for (const [name, text] of outputs) {
    const file = path.join(dir, name);
    await writeFile(`${file}.tmp`, text);
    await rename(`${file}.tmp`, file);
    written.push(file);
  }
  return written;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

function formatCell(value: Cell): string {
  if (value === null) return '-';
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return value.toLocaleString('en-US');
    return Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3);
  }
  return value.replace(/\|/g, '\\|');
}

export function markdownTable(columns: string[], rows: Array<Record<string, Cell>>): string {
  const lines = [`| ${columns.join(' | ')} |`, `| ${columns.map(() => '---').join(' | ')} |`];
  for (const row of rows) lines.push(`| ${columns.map((c) => formatCell(row[c] ?? null)).join(' | ')} |`);
  return lines.join('\n');
}

export function renderSection(section: BenchSection): string {
  const parts = [`## ${section.title}`, ''];
  if (section.note) parts.push(section.note, '');
  if (section.skipped) parts.push(`Not run: ${section.skipped}`, '');
  else parts.push(markdownTable(section.columns, section.rows), '');
  return parts.join('\n');
}

export function renderMarkdown(report: BenchReport, chartFile: string): string {
  const m = report.machine;
  const settings = Object.entries(report.settings)
    .map(([k, v]) => `${k}=${formatCell(v)}`)
    .join(', ');
  const head = [
    `# ltxvfs benchmark (${report.mode})`,
    '',
    `- Command: \`${report.command}\``,
    `- Run: ${report.startedAt} .. ${report.finishedAt}`,
    `- Machine: ${m.cpuModel}, ${m.cpus} cores, ${formatBytes(m.memoryBytes)} RAM, ${m.platform} ${m.release} ${m.arch}${m.loadAverage ? `; load average ${m.loadAverage.start.toFixed(1)} at start, ${m.loadAverage.end.toFixed(1)} at end` : ''}`,
    `- Node: ${m.node}`,
    `- Settings: ${settings}`,
    '',
    `![cold reads](${chartFile})`,
    '',
  ];
  const summary = renderColdSummary(report);
  return `${head.join('\n')}\n${summary ? `${summary}\n` : ''}${report.sections.map(renderSection).join('\n')}`;
}

/**
 * The cold-read table pivoted to one row per dataset and query, one column per approach
 * (`ms (requests)`): the table the README quotes.
 */
export function renderColdSummary(report: BenchReport): string {
  const cold = report.sections.find((s) => s.id === 'cold' && !s.skipped);
  if (!cold) return '';
  const approaches = [...new Set(cold.rows.map((r) => String(r.approach)))];
  const keys = [...new Set(cold.rows.map((r) => `${r.dataset}\u0000${r.query}`))];
  const rows = keys.map((key) => {
    const [dataset, query] = key.split('\u0000') as [string, string];
    const row: Record<string, Cell> = { dataset, query };
    for (const approach of approaches) {
      const hit = cold.rows.find(
        (r) => r.dataset === dataset && r.query === query && r.approach === approach,
      );
      const ms = hit?.['ms (median)'];
      row[approach] =
        typeof ms === 'number'
          ? `${ms.toLocaleString('en-US')} ms (${hit?.requests} req)`
          : String(hit?.['bytes read'] ?? '-').replace(/^not run: /, 'not run: ');
    }
    return row;
  });
  return [
    '## Summary: cold open to first row, ms (requests to the store)',
    '',
    markdownTable(['dataset', 'query', ...approaches], rows),
    '',
  ].join('\n');
}

const PALETTE = ['#2b6cb0', '#dd6b20', '#718096', '#38a169', '#805ad5', '#c53030'];

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function formatShort(value: number): string {
  if (value >= 10_000) return `${(value / 1000).toFixed(0)}k`;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  if (value >= 10 || Number.isInteger(value)) return value.toFixed(0);
  return value.toPrecision(2);
}

/**
 * Two panels of horizontal grouped bars on a log scale (restoring a database and reading one
 * page differ by orders of magnitude): left cold latency in ms, right requests.
 */
export function renderColdChart(points: ColdPoint[], title: string): string {
  const groups = [...new Set(points.map((p) => p.group))];
  const approaches = [...new Set(points.map((p) => p.approach))];
  const bar = 14;
  const groupGap = 16;
  const labelWidth = 150;
  const panelWidth = 330;
  const top = 56;
  const groupHeight = approaches.length * bar + groupGap;
  const height = top + Math.max(1, groups.length) * groupHeight + 24 + approaches.length * 18;
  const width = labelWidth + 2 * panelWidth + 60;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  if (points.length === 0) {
    out.push(
      `<text x="${width / 2}" y="${top}" text-anchor="middle">no cold-read results in this run</text>`,
      '</svg>',
    );
    return `${out.join('\n')}\n`;
  }

  const panels: Array<{ x: number; label: string; value: (p: ColdPoint) => number }> = [
    { x: labelWidth, label: 'time to answer, ms (log scale)', value: (p) => p.ms },
    { x: labelWidth + panelWidth + 30, label: 'requests to the store (log scale)', value: (p) => p.requests },
  ];
  for (const panel of panels) {
    const values = points
      .filter((p) => !p.skipped)
      .map(panel.value)
      .filter((v) => v > 0);
    const maxLog = Math.ceil(Math.log10(Math.max(10, ...values)));
    const scale = (v: number) => (v <= 1 ? 0 : (Math.log10(v) / maxLog) * (panelWidth - 50));
    out.push(`<text x="${panel.x}" y="${top - 18}" font-weight="bold">${escapeXml(panel.label)}</text>`);
    const axisBottom = top + groups.length * groupHeight - groupGap + 4;
    for (let decade = 0; decade <= maxLog; decade++) {
      const x = panel.x + scale(10 ** decade);
      out.push(
        `<line x1="${x.toFixed(1)}" y1="${top - 4}" x2="${x.toFixed(1)}" y2="${axisBottom}" stroke="#e2e8f0"/>`,
        `<text x="${x.toFixed(1)}" y="${axisBottom + 12}" text-anchor="middle" fill="#4a5568">${formatShort(10 ** decade)}</text>`,
      );
    }
    groups.forEach((group, gi) => {
      approaches.forEach((approach, ai) => {
        const point = points.find((p) => p.group === group && p.approach === approach);
        if (!point) return;
        const y = top + gi * groupHeight + ai * bar;
        if (point.skipped) {
          out.push(
            `<text x="${panel.x + 3}" y="${y + bar - 4}" fill="#718096">${escapeXml(point.skipped)}</text>`,
          );
          return;
        }
        const value = panel.value(point);
        const w = Math.max(1, scale(value));
        out.push(
          `<rect class="bar" x="${panel.x}" y="${y}" width="${w.toFixed(1)}" height="${bar - 2}" fill="${PALETTE[ai % PALETTE.length]}"/>`,
          `<text x="${(panel.x + w + 3).toFixed(1)}" y="${y + bar - 4}">${formatShort(value)}</text>`,
        );
      });
    });
  }
  groups.forEach((group, gi) => {
    const y = top + gi * groupHeight + (approaches.length * bar) / 2 + 4;
    out.push(`<text x="${labelWidth - 8}" y="${y}" text-anchor="end">${escapeXml(group)}</text>`);
  });
  const legendTop = top + groups.length * groupHeight + 20;
  approaches.forEach((approach, ai) => {
    const y = legendTop + ai * 18;
    out.push(
      `<rect x="${labelWidth}" y="${y - 10}" width="12" height="12" fill="${PALETTE[ai % PALETTE.length]}"/>`,
      `<text x="${labelWidth + 18}" y="${y}">${escapeXml(approach)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
