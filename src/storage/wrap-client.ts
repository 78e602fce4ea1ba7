import type { ReplicaClient } from './types.js';

/** The methods a wrapper may replace (the URL always stays the wrapped client's). */
export type ClientOverrides = Partial<Omit<ReplicaClient, 'url'>>;

/**
 * A client that forwards every call to `client` except those in `overrides`: how the writer
 * layers behaviour (page digests, the manifest's write observer) over a backend without
 * subclassing it. A method added to `ReplicaClient` must be forwarded here, and the compiler says
 * so, instead of in every wrapper. `url` stays a live getter.
 */
export function wrapClient(client: ReplicaClient, overrides: ClientOverrides): ReplicaClient {
  const forwarding: ReplicaClient = {
    get url() {
      return client.url;
    },
    levels: () => client.levels(),
    listAll: () => client.listAll(),
    listFiles: (level, options) => client.listFiles(level, options),
    readRange: (file, offset, length) => client.readRange(file, offset, length),
    readFile: (file) => client.readFile(file),
    writeFile: (file, data, options) => client.writeFile(file, data, options),
    writeFileFrom: (file, source, options) => client.writeFileFrom(file, source, options),
    deleteFiles: (files) => client.deleteFiles(files),
    readObject: (name) => client.readObject(name),
    readObjectIfChanged: (name, etag) => client.readObjectIfChanged(name, etag),
    writeObject: (name, data, condition) => client.writeObject(name, data, condition),
    deleteObject: (name, condition) => client.deleteObject(name, condition),
    preconnect: (sockets) => client.preconnect?.(sockets),
    stats: () => client.stats(),
    resetStats: () => client.resetStats(),
    close: () => client.close(),
  };
  return Object.assign(forwarding, overrides);
}
