import type { LtxFileInfo, ReplicaClient } from './types.js';

/** Every level's listing, levels in ascending order, from one listing of the replica. */
export async function listAllLevels(client: ReplicaClient): Promise<Map<number, LtxFileInfo[]>> {
  const out = new Map<number, LtxFileInfo[]>();
  for (const f of await client.listAll()) {
    const list = out.get(f.level);
    if (list === undefined) out.set(f.level, [f]);
    else list.push(f);
  }
  return new Map([...out.entries()].sort((a, b) => a[0] - b[0]));
}
