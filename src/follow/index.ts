import { openReplicaClient } from '../storage/index.js';
import type { ReplicaClient } from '../storage/types.js';
import { Follower, type FollowOptions } from './follower.js';

export {
  type ApplyEvent,
  Follower,
  type FollowOptions,
  type FollowStatus,
  type ReplanEvent,
} from './follower.js';
export { followStatePath } from './state-file.js';

/**
 * Restores the replica at `url` into the plain SQLite file `path` and keeps it current until
 * `close()`: any SQLite client (better-sqlite3, the sqlite3 shell, Python) can read the file
 * meanwhile and sees whole transactions only. Resolves once the file is readable.
 */
export async function follow(
  url: string | ReplicaClient,
  path: string,
  options: FollowOptions = {},
): Promise<Follower> {
  const owned = typeof url === 'string';
  const client = typeof url === 'string' ? openReplicaClient(url) : url;
  let follower: Follower;
  try {
    follower = await Follower.start(client, path, options, owned);
  } catch (err) {
    if (owned) await client.close();
    throw err;
  }
  follower.run();
  return follower;
}
