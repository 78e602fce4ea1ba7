import { stat } from 'node:fs/promises';
import { FileReplicaClient, openReplicaClient, type ReplicaClient } from '../storage/index.js';
import { LtxvfsError } from '../util/errors.js';

/**
 * Opens the replica a command was pointed at. A typo in a directory name must not look like an
 * empty replica, so a local directory has to exist before a command lists it.
 */
export async function openCommandReplica(url: string): Promise<ReplicaClient> {
  const client = openReplicaClient(url);
  if (client instanceof FileReplicaClient) {
    const info = await stat(client.root).catch(() => null);
    if (info === null) {
      throw new LtxvfsError('STORAGE_NOT_FOUND', `replica directory ${client.root} does not exist`);
    }
    if (!info.isDirectory()) {
      throw new LtxvfsError('STORAGE_BAD_URL', `replica path ${client.root} is not a directory`);
    }
  }
  return client;
}
