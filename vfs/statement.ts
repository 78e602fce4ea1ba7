import { LtxvfsError } from '../src/util/errors.js';
import { bindAll } from './binding.js';
import { type FastAnswer, NOT_LOCAL, orWaiting } from './local-fast-path.js';
import type { Stepper } from './stepper.js';
import type { Row, SqlParam, SqlParams, SqlValue } from './values.js';

/** What a statement needs from its connection: the API and the serialized, error-naming call. */
export interface StatementHost {
  readonly uri: string;
  readonly sqlite3: SQLiteAPI;
  readonly stepper: Stepper;
  /** Runs `task` alone on the connection's module instance; failures become named errors. */
  call<T>(task: () => Promise<T>): Promise<T>;
  /** The statement is gone (finalized by its owner): forget it. */
  forget(statement: LtxStatement): void;
  /** The connection's synchronous fast path (see LocalFastPath): NOT_LOCAL when it cannot answer. */
  fastFirst(sql: string, params: SqlParams | undefined): FastAnswer<Row | undefined>;
  fastAll(sql: string, params: SqlParams | undefined): FastAnswer<{ columns: string[]; rows: SqlValue[][] }>;
  /** Marks the connection busy until the returned function is called (an open iteration). */
  hold(): () => void;
}

/** Arguments as better-sqlite3 takes them: `(1, 'a')`, `([1, 'a'])` or `({ id: 1 })`. */
export type StatementArgs = SqlParam[] | [SqlParams];

/** One row as an object (a later duplicate column name wins, as in `all`). */
export function toRow(columns: readonly string[], values: readonly SqlValue[]): Row {
  const row: Row = {};
  for (let i = 0; i < columns.length; i++) {
    const name = columns[i];
    if (name !== undefined) row[name] = values[i] ?? null;
  }
  return row;
}

function toParams(args: StatementArgs): SqlParams | undefined {
  if (args.length === 0) return undefined;
  const [first] = args;
  if (args.length === 1 && first !== null && typeof first === 'object' && !(first instanceof Uint8Array)) {
    return first as SqlParams;
  }
  return args as SqlParam[];
}

/**
 * One prepared statement of a read-only connection (from `LtxDatabase.prepare`), in the style of
 * better-sqlite3's Statement, async because a page may have to come from the store. `iterate`
 * steps one row per call into SQLite, so leaving the loop early stops the page reads there.
 * A statement runs one call at a time: using it while it is being iterated is an error.
 */
export class LtxStatement {
  private finalized = false;
  private busy = false;

  constructor(
    private readonly host: StatementHost,
    /** The SQL text of the statement, as SQLite parsed it. */
    readonly source: string,
    private readonly handle: number,
    private readonly columnNames: readonly string[],
  ) {}

  /** The result columns, in order (empty for a statement that returns no rows). */
  columns(): Array<{ name: string }> {
    this.assertUsable();
    return this.columnNames.map((name) => ({ name }));
  }

  /** The first row, or undefined; the rest of the result is never stepped. */
  get(...args: StatementArgs): Promise<Row | undefined> {
    const waiting = () =>
      this.exclusive(() =>
        this.host.call(async () => {
          this.bind(args);
          try {
            return await this.host.stepper.stepRow(this.handle, this.columnNames);
          } finally {
            await this.rewind();
          }
        }),
      );
    if (this.busy || this.finalized) return waiting();
    return orWaiting(this.host.fastFirst(this.source, toParams(args)), waiting);
  }

  /** Every row, as objects. */
  all(...args: StatementArgs): Promise<Row[]> {
    const waiting = () =>
      this.exclusive(() =>
        this.host.call(async () => {
          this.bind(args);
          try {
            const rows: Row[] = [];
            for (;;) {
              const row = await this.host.stepper.stepRow(this.handle, this.columnNames);
              if (row === undefined) return rows;
              rows.push(row);
            }
          } finally {
            await this.rewind();
          }
        }),
      );
    if (this.busy || this.finalized) return waiting();
    const fast = this.host.fastAll(this.source, toParams(args));
    const asRows = (answer: { columns: string[]; rows: SqlValue[][] }) =>
      answer.rows.map((values) => toRow(answer.columns, values));
    if (fast instanceof Promise)
      return fast.then((answer) => (answer === NOT_LOCAL ? waiting() : asRows(answer)));
    return fast === NOT_LOCAL ? waiting() : Promise.resolve(asRows(fast));
  }

  /**
   * Rows one at a time. Each row is one call into SQLite, so other connections of the same
   * module instance run between rows; `break` (or `return()`) resets the statement at once.
   */
  async *iterate(...args: StatementArgs): AsyncGenerator<Row, void, undefined> {
    this.assertUsable();
    if (this.busy) throw this.busyError();
    this.busy = true;
    // Between rows the statement holds its read transaction: other calls of the connection must
    // see that state, so none of them takes the fast path meanwhile.
    const release = this.host.hold();
    try {
      await this.host.call(async () => this.bind(args));
      for (;;) {
        const row = await this.host.call(async () =>
          this.host.stepper.stepRow(this.handle, this.columnNames),
        );
        if (row === undefined) return;
        yield row;
      }
    } finally {
      this.busy = false;
      release();
      // The statement may already be finalized by a close() that ran while we were suspended.
      if (!this.finalized) await this.host.call(() => this.rewind());
    }
  }

  /** A replica cannot be written: always REPLICA_READONLY. */
  async run(..._args: StatementArgs): Promise<never> {
    this.assertUsable();
    throw new LtxvfsError(
      'REPLICA_READONLY',
      `${this.host.uri} is a read-only replica: cannot run "${this.source}" for its changes`,
    );
  }

  /** Frees the statement; using it afterwards is an error. Safe to call twice. */
  async finalize(): Promise<void> {
    if (this.finalized) return;
    this.finalized = true;
    this.host.forget(this);
    await this.host.call(async () => {
      await this.host.sqlite3.finalize(this.handle);
    });
  }

  /** @internal The connection is closing and finalizes the handle itself. */
  detach(): number {
    this.finalized = true;
    return this.handle;
  }

  get isFinalized(): boolean {
    return this.finalized;
  }

  private bind(args: StatementArgs): void {
    const params = toParams(args);
    if (params !== undefined) bindAll(this.host.sqlite3, this.handle, params);
  }

  /** Back to the start with no bindings, so the statement holds no read transaction. */
  private async rewind(): Promise<void> {
    await this.host.stepper.reset(this.handle);
    this.host.sqlite3.clear_bindings(this.handle);
  }

  private async exclusive<T>(task: () => Promise<T>): Promise<T> {
    this.assertUsable();
    if (this.busy) throw this.busyError();
    this.busy = true;
    try {
      return await task();
    } finally {
      this.busy = false;
    }
  }

  private busyError(): LtxvfsError {
    return new LtxvfsError(
      'BAD_ARGUMENT',
      `statement "${this.source}" is busy (an iterate() over it has not finished); prepare another one`,
    );
  }

  private assertUsable(): void {
    if (this.finalized) {
      throw new LtxvfsError('BAD_ARGUMENT', `statement "${this.source}" of ${this.host.uri} is finalized`);
    }
  }
}
