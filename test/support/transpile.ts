import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** The project root (test/support/..). */
export const projectRoot = resolve(import.meta.dirname, '..', '..');

/**
 * Type-strips a TypeScript entry file and every project file it imports (relative `.js`
 * imports of `.ts` sources) into `buildDir`, mirroring the project layout, so a plain `node`
 * child process can run test code against the current sources (not a possibly stale dist/):
 * a second or so, where a tsc program over the same files takes ~20 s. `buildDir` should lie
 * inside the project so the output resolves node_modules; `.tmp/` is gitignored. Returns the
 * path of the compiled entry.
 *
 * Not `tsx` (or any loader hook): the children it builds are measured. The memory child's peak
 * RSS would include an in-process transpiler and its cache, and the crash child's kill points
 * would fall among a loader's file writes; a child of plain `.js` files measures only our code.
 * Imports are found by TypeScript's own pre-processor, so `import()` with a literal path and
 * `export ... from` are followed too.
 */
export function transpileTree(entry: string, buildDir: string): string {
  const pending = [entry];
  const done = new Set<string>();
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (done.has(file)) continue;
    done.add(file);
    const source = readFileSync(file, 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        verbatimModuleSyntax: false,
      },
    });
    const out = join(buildDir, relative(projectRoot, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
    for (const { fileName } of ts.preProcessFile(source, true, true).importedFiles) {
      if (/^\.{1,2}\//.test(fileName) && fileName.endsWith('.js'))
        pending.push(resolve(dirname(file), fileName.replace(/\.js$/, '.ts')));
    }
  }
  // Its own module type, so a package.json being rewritten by an npm install meanwhile can't
  // make node read the child as CommonJS.
  writeFileSync(join(buildDir, 'package.json'), '{ "type": "module" }\n');
  return join(buildDir, relative(projectRoot, entry)).replace(/\.ts$/, '.js');
}

export function removeBuild(buildDir: string): void {
  rmSync(buildDir, { recursive: true, force: true });
}
