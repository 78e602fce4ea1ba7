import type { ReplicaRegistry, ReplicaSource } from './replica-port.js';

/**
 * Registered replicas by name. A URI path matches its name with or without a trailing ".db":
 * a replica registered as "app" opens as `file:app?vfs=ltx` and `file:app.db?vfs=ltx`, and one
 * registered as "app.db" opens under both names too.
 */
export class ReplicaMap implements ReplicaRegistry {
  private readonly byName = new Map<string, ReplicaSource>();

  add(name: string, replica: ReplicaSource): void {
    this.byName.set(name, replica);
  }

  delete(name: string): boolean {
    return this.byName.delete(name);
  }

  /** The registered name a URI path refers to, if any. */
  canonicalName(path: string): string | undefined {
    for (const candidate of [path, path.endsWith('.db') ? path.slice(0, -3) : `${path}.db`]) {
      if (this.byName.has(candidate)) return candidate;
    }
    return undefined;
  }

  resolve(path: string): { name: string; replica: ReplicaSource } | undefined {
    const name = this.canonicalName(path);
    const replica = name === undefined ? undefined : this.byName.get(name);
    return name === undefined || replica === undefined ? undefined : { name, replica };
  }

  get(name: string): ReplicaSource | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
