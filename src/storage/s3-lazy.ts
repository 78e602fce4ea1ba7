import type { S3ReplicaClient, S3ReplicaClientOptions } from './s3-client.js';
import { emptyStats } from './stats.js';
import type {
  ListOptions,
  LocalFileSource,
  LtxFileInfo,
  LtxFileRef,
  ObjectCondition,
  ReplicaClient,
  RequestStats,
  SmallObject,
  WriteOptions,
} from './types.js';
import type { S3ReplicaLocation } from './url.js';

/**
 * The S3 backend as openReplicaClient hands it out: S3ReplicaClient, with its module (and with it
 * @aws-sdk/client-s3, about half a second of loading) imported at the first request. A process
 * that only opens file replicas, or prints --help, never loads the SDK.
 */
export class LazyS3ReplicaClient implements ReplicaClient {
  readonly url: string;
  private loading: Promise<S3ReplicaClient> | undefined;
  private loaded: S3ReplicaClient | undefined;

  constructor(
    private readonly location: S3ReplicaLocation,
    private readonly options: S3ReplicaClientOptions = {},
  ) {
    this.url = `s3://${location.bucket}/${location.path}`;
  }

  /** The real client, loading its module on the first call. */
  client(): Promise<S3ReplicaClient> {
    this.loading ??= import('./s3-client.js').then((m) => {
      this.loaded = new m.S3ReplicaClient(this.location, this.options);
      return this.loaded;
    });
    return this.loading;
  }

  async levels(): Promise<number[]> {
    return (await this.client()).levels();
  }

  async listAll(): Promise<LtxFileInfo[]> {
    return (await this.client()).listAll();
  }

  async listFiles(level: number, options?: ListOptions): Promise<LtxFileInfo[]> {
    return (await this.client()).listFiles(level, options);
  }

  async readRange(file: LtxFileRef, offset: number, length: number): Promise<Uint8Array> {
    return (await this.client()).readRange(file, offset, length);
  }

  async readFile(file: LtxFileRef): Promise<Uint8Array> {
    return (await this.client()).readFile(file);
  }

  async writeFile(file: LtxFileRef, data: Uint8Array, options: WriteOptions): Promise<LtxFileInfo> {
    return (await this.client()).writeFile(file, data, options);
  }

  async writeFileFrom(
    file: LtxFileRef,
    source: LocalFileSource,
    options: WriteOptions,
  ): Promise<LtxFileInfo> {
    return (await this.client()).writeFileFrom(file, source, options);
  }

  async deleteFiles(files: LtxFileRef[]): Promise<void> {
    return (await this.client()).deleteFiles(files);
  }

  async readObjectIfChanged(
    name: string,
    etag: string | undefined,
  ): Promise<SmallObject | null | 'unchanged'> {
    return (await this.client()).readObjectIfChanged(name, etag);
  }

  async readObject(name: string): Promise<SmallObject | null> {
    return (await this.client()).readObject(name);
  }

  async writeObject(name: string, data: Uint8Array, condition: ObjectCondition): Promise<{ etag: string }> {
    return (await this.client()).writeObject(name, data, condition);
  }

  async deleteObject(name: string, condition?: { ifMatch: string }): Promise<void> {
    return (await this.client()).deleteObject(name, condition);
  }

  preconnect(sockets: number): void {
    this.client().then(
      (c) => c.preconnect(sockets),
      () => {},
    );
  }

  /** Before the first request nothing was counted. */
  stats(): RequestStats {
    return this.loaded?.stats() ?? emptyStats();
  }

  resetStats(): void {
    this.loaded?.resetStats();
  }

  async close(): Promise<void> {
    // A client still loading is closed once it exists; one never asked for holds nothing.
    if (this.loading) await (await this.loading).close();
  }
}
