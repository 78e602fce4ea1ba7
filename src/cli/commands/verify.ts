import type { Command } from 'commander';
import { verifyReplica } from '../../replica/verify.js';
import { LtxvfsError } from '../../util/errors.js';
import { openCommandReplica } from '../open-replica.js';

export function register(program: Command): void {
  program
    .command('verify')
    .summary("check every LTX file's checksums and the contiguity of every level")
    .description(
      "check every LTX file (full decode, checksums), that every level tiles its TXIDs, and that the latest state restores; prints 'ok: ...' or one 'problem: ...' line each (exit 1)",
    )
    .argument('<replica-url>', 's3://bucket/path, file:///abs/dir, or a directory')
    .action(async (url: string) => {
      const client = await openCommandReplica(url);
      try {
        const report = await verifyReplica(client);
        for (const p of report.problems) process.stdout.write(`problem: ${p}\n`);
        if (report.problems.length > 0) {
          throw new LtxvfsError(
            'REPLICA_CORRUPT',
            `${url}: ${report.problems.length} problem(s) in ${report.files} files (listed on stdout)`,
          );
        }
        process.stdout.write(
          `ok: ${report.files} files in levels ${report.levels.join(', ') || '(none)'}, ${report.bytes} bytes verified\n`,
        );
      } finally {
        await client.close();
      }
    });
}
