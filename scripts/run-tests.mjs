#!/usr/bin/env node
// `npm test`: typecheck, build, lint, import rules (scripts/check-imports.mjs: no cycle, room
// boundaries) (suites spawn dist/src/cli/main.js), start a throwaway S3 server
// (Ceph RGW, scripts/rgw-start.sh), run vitest with its settings, and stop the server whatever
// happens. Extra arguments go to vitest: `npm test -- test/storage-contract.test.ts`.
//
// Environment:
//   LTXVFS_S3_ENDPOINT=http://host:port  use that running server instead of starting one
//                                        (credentials: AWS_ACCESS_KEY_ID/SECRET or AKTEST/SKTEST)
//   RGW_PORT / MON_PORT                  ports for the server started here (default: free ports)
//   CI=true                              a server that cannot start fails the run; otherwise the
//                                        S3 suites are skipped with the reason printed
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const ci = process.env.CI === 'true';
const vitestArgs = process.argv.slice(2);
const log = (msg) => process.stderr.write(`[run-tests] ${msg}\n`);

let current; // the child we are waiting on, so signals reach it
let stopServer = async () => {};
let stopping = false;

function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      stdio: options.capture ? ['ignore', 'pipe', 'pipe'] : 'inherit',
      env: options.env ?? process.env,
    });
    current = child;
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk) => {
      out += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      err += chunk;
      process.stderr.write(chunk);
    });
    child.on('error', (err) => resolve({ code: 127, out: String(err) }));
    child.on('close', (code, signal) => {
      current = undefined;
      resolve({ code: code ?? (signal ? 128 : 1), out, err });
    });
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startS3() {
  if (process.env.LTXVFS_S3_ENDPOINT) {
    log(`using the S3 server at ${process.env.LTXVFS_S3_ENDPOINT} (LTXVFS_S3_ENDPOINT)`);
    return {
      S3_ENDPOINT: process.env.LTXVFS_S3_ENDPOINT,
      AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'AKTEST',
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'SKTEST',
    };
  }
  const rgwPort = process.env.RGW_PORT ?? String(await freePort());
  let monPort = process.env.MON_PORT ?? String(await freePort());
  while (monPort === rgwPort) monPort = String(await freePort());
  const env = { ...process.env, RGW_PORT: rgwPort, MON_PORT: monPort };
  const started = Date.now();
  log(`starting Ceph RGW on 127.0.0.1:${rgwPort} (mon ${monPort})`);
  const { code, out, err } = await run('bash', [join(root, 'scripts', 'rgw-start.sh')], {
    capture: true,
    env,
  });
  const ready = /^READY (.*)$/m.exec(out);
  if (code !== 0 || !ready) {
    const why = err.trim().split('\n').filter(Boolean).at(-1) ?? `rgw-start.sh exited ${code}`;
    stopServer = async () => {
      await run('bash', [join(root, 'scripts', 'rgw-stop.sh')], { env }); // whatever half started
    };
    return { error: `the S3 test server (Ceph RGW) did not start: ${why}` };
  }
  const alreadyRunning = /already running/.test(ready[1]);
  if (!alreadyRunning) {
    stopServer = async () => {
      log('stopping Ceph RGW');
      await run('bash', [join(root, 'scripts', 'rgw-stop.sh')], { env });
    };
  }
  log(`RGW ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const settings = Object.fromEntries(
    ready[1]
      .split(' ')
      .filter((kv) => /^[A-Z_0-9]+=/.test(kv))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  return settings;
}

// The reference tools some suites compare against (the sqlite3 shell as a second primary, the C
// lz4 tool as a second codec), installed with apt when missing, as rgw-start.sh installs ceph,
// since CI runs on a clean machine. Still missing: with CI=true the suites that need one fail
// (test/support/reference-tools.ts); otherwise they skip and say why.
async function ensureReferenceTools() {
  const missing = [];
  for (const [command, pkg] of [
    ['sqlite3', 'sqlite3'],
    ['lz4', 'lz4'],
  ]) {
    const found = await run('sh', ['-c', `command -v ${command}`], { capture: true });
    if (found.code !== 0) missing.push(pkg);
  }
  if (missing.length === 0) return;
  log(`installing reference tools with apt: ${missing.join(' ')}`);
  const installed = await run(
    'sh',
    [
      '-c',
      `flock /tmp/ltxvfs-rgw-apt.lock sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing.join(' ')}' >/dev/null 2>&1`,
    ],
    { capture: true },
  );
  if (installed.code !== 0)
    log(
      `could not install ${missing.join(' ')}; the suites that need them will ${ci ? 'FAIL (CI=true)' : 'skip'}`,
    );
}

async function main() {
  await ensureReferenceTools();
  log('typecheck: tsc -p tsconfig.json');
  const typecheck = await run(bin('tsc'), ['-p', 'tsconfig.json']);
  log('build: tsc -p tsconfig.build.json');
  const build = await run(bin('tsc'), ['-p', 'tsconfig.build.json']);
  log('lint and format: biome check .');
  const lint = await run(bin('biome'), ['check', '.', '--diagnostic-level=error']);
  log('import rules: node scripts/check-imports.mjs');
  const imports = await run(process.execPath, [join(root, 'scripts', 'check-imports.mjs')]);
  if (stopping) return 130;

  const s3 = await startS3();
  if (stopping) return 130;
  const env = {
    ...process.env,
    AWS_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  if (s3.error) {
    if (ci) {
      log(`${s3.error}; failing because CI=true`);
      return 1;
    }
    log(`${s3.error}; S3 suites will be SKIPPED`);
    env.LTXVFS_S3_SKIP_REASON = s3.error;
    delete env.S3_ENDPOINT;
    delete env.LTXVFS_S3_AVAILABLE;
  } else {
    Object.assign(env, s3, { LTXVFS_S3_AVAILABLE: '1' });
    delete env.LTXVFS_S3_SKIP_REASON;
  }

  const vitest = await run(bin('vitest'), ['run', ...vitestArgs], { env });
  if (typecheck.code !== 0) log('FAILED: typecheck (tsc -p tsconfig.json) reported errors, see above');
  if (build.code !== 0) log('FAILED: build (tsc -p tsconfig.build.json) reported errors, see above');
  if (lint.code !== 0) log('FAILED: lint/format (biome check .) reported errors, see above');
  if (imports.code !== 0)
    log('FAILED: import rules (scripts/check-imports.mjs) reported violations, see above');
  if (vitest.code !== 0) return vitest.code;
  return typecheck.code !== 0 || build.code !== 0 || lint.code !== 0 || imports.code !== 0 ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    current?.kill(signal);
    stopServer().finally(() => process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1)));
  });
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  log(`error: ${err?.stack ?? err}`);
} finally {
  if (!stopping) await stopServer();
}
process.exit(exitCode);
