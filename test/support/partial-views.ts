import type { Replica, ReplicaSource, ReplicaView } from '../../src/replica/replica.js';

/**
 * `view` whose in-memory reads answer only where `local(pgno)`, as after an eviction or before
 * hydration reached a page; reads that may wait still work.
 */
export function partlyLocal(view: ReplicaView, local: (pgno: number) => boolean): ReplicaView {
  return {
    txid: view.txid,
    pageSize: view.pageSize,
    pageCount: view.pageCount,
    timestamp: view.timestamp,
    readPage: (pgno) => view.readPage(pgno),
    readPageSync: (pgno) => (local(pgno) ? view.readPageSync(pgno) : undefined),
    readPageIntoSync: (pgno, within, length, dst, at) =>
      local(pgno) && (view.readPageIntoSync?.(pgno, within, length, dst, at) ?? false),
    release: () => view.release(),
  };
}

/** A source serving `replica`'s states through `wrap` (to register under another name). */
export function wrappedSource(replica: Replica, wrap: (view: ReplicaView) => ReplicaView): ReplicaSource {
  return {
    acquireLatest: () => wrap(replica.acquireLatest()),
    acquireAt: async (target) => wrap(await replica.acquireAt(target)),
    lagSeconds: () => replica.lagSeconds(),
    hydration: () => replica.hydration(),
  };
}
