#!/usr/bin/env node
// The import rules of DESIGN.md, checked over the relative imports of src/ and vfs/:
// - no import cycle (a cycle is printed as a -> b -> a);
// - src/ltx and src/wal import nothing outside themselves and src/util;
// - src/writer does not import src/replica.
// Exit 1 with one line per violation. Run by `npm test`; alone: `node scripts/check-imports.mjs`.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Rooms and where they may not import from (paths relative to the root). */
const ROOM_RULES = [
  { room: 'src/ltx/', allowed: ['src/ltx/', 'src/util/'] },
  { room: 'src/wal/', allowed: ['src/wal/', 'src/util/'] },
  { room: 'src/writer/', forbidden: ['src/replica/'] },
];

function sourceFiles(dir) {
  const out = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.ts$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

// `import ... from './x.js'`, `export ... from`, `import './x.js'`, `import('./x.js')`; type-only
// imports count too (a type cycle is still two files that must change together).
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

function importsOf(file) {
  const text = readFileSync(join(root, file), 'utf8');
  const out = new Set();
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1].replace(/\.js$/, '.ts');
    out.add(relative(root, resolve(root, dirname(file), spec)));
  }
  return [...out];
}

const files = [...sourceFiles('src'), ...sourceFiles('vfs')];
const known = new Set(files);
const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => known.has(t))]));
const problems = [];

for (const [file, targets] of graph) {
  for (const rule of ROOM_RULES) {
    if (!file.startsWith(rule.room)) continue;
    for (const t of targets) {
      const bad = rule.allowed
        ? !rule.allowed.some((a) => t.startsWith(a))
        : rule.forbidden.some((f) => t.startsWith(f));
      if (bad)
        problems.push(
          `room rule: ${file} imports ${t} (${rule.room} ${rule.allowed ? `may import only ${rule.allowed.join(', ')}` : `must not import ${rule.forbidden.join(', ')}`})`,
        );
    }
  }
}

// Cycles: depth-first search, one report per strongly connected back edge.
const state = new Map(); // undefined: new, 1: on the stack, 2: done
const stack = [];
const seen = new Set();
function visit(file) {
  state.set(file, 1);
  stack.push(file);
  for (const t of graph.get(file) ?? []) {
    if (state.get(t) === 1) {
      const cycle = [...stack.slice(stack.indexOf(t)), t];
      const key = [...cycle.slice(0, -1)].sort().join(' ');
      if (!seen.has(key)) {
        seen.add(key);
        problems.push(`import cycle: ${cycle.join(' -> ')}`);
      }
    } else if (state.get(t) === undefined) visit(t);
  }
  stack.pop();
  state.set(file, 2);
}
for (const f of files) if (state.get(f) === undefined) visit(f);

for (const p of problems) process.stderr.write(`${p}\n`);
if (problems.length > 0) process.exit(1);
process.stdout.write(`imports: ${files.length} files, no cycle, room rules hold\n`);
