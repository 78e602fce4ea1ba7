// Run under `ulimit -n 1024` by test/replica-many-files.test.ts: opens a replica of many L0 files,
// reads the row, polls one more file in, and prints what it saw as one JSON line.

import { makeManyFileReplica } from '../dist/bench/support/many-files.js';
import { Replica } from '../dist/src/replica/replica.js';
import { openReplicaClient } from '../dist/src/storage/index.js';

const [dir, scratch, filesArg] = process.argv.slice(2);
const files = Number(filesArg);
const made = makeManyFileReplica(dir, 0, scratch); // layout helpers only: the files exist already
const client = openReplicaClient(dir);
const started = performance.now();
const replica = await Replica.open(client, { pollIntervalMs: 0 });
const openMs = performance.now() - started;
const page2 = async (view) => Buffer.from(await view.readPage(2)).toString('latin1');
const view = replica.acquireLatest();
const before = { txid: view.txid, hasValue: (await page2(view)).includes(String(files).padStart(8, '0')) };
view.release();
made.append(files + 1);
const polled = await replica.poll();
const next = replica.acquireLatest();
const after = { txid: next.txid, hasValue: (await page2(next)).includes(String(files + 1).padStart(8, '0')) };
next.release();
await replica.close();
await client.close();
console.log(JSON.stringify({ openMs, before, polled, after }));
