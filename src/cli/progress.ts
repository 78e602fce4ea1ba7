/**
 * Progress on stderr. On a terminal one status line is redrawn in place (a bar); anything else
 * written meanwhile (stdout rows, log lines) first clears it, then it is redrawn. Elsewhere (a
 * pipe, a log file) the status is printed as plain lines, only when asked for (`plain`), and at
 * most once per `plainIntervalMs`.
 */
export interface StatusLineOptions {
  /** Redraw in place; default: the stream is a TTY. */
  tty?: boolean;
  /** Without a TTY, print status lines at all (e.g. --verbose). */
  plain?: boolean;
  plainIntervalMs?: number;
  now?: () => number;
}

interface Writable {
  write(text: string): unknown;
  isTTY?: boolean;
}

export class StatusLine {
  private readonly tty: boolean;
  private readonly plain: boolean;
  private readonly plainIntervalMs: number;
  private readonly now: () => number;
  private shown = '';
  private lastPlainAt = -Infinity;

  constructor(
    private readonly err: Writable,
    options: StatusLineOptions = {},
  ) {
    this.tty = options.tty ?? err.isTTY === true;
    this.plain = options.plain ?? false;
    this.plainIntervalMs = options.plainIntervalMs ?? 1000;
    this.now = options.now ?? Date.now;
  }

  /** The current status; `force` prints it as a plain line even within the interval. */
  update(text: string, force = false): void {
    if (this.tty) {
      this.err.write(`\r${text}\x1b[K`);
      this.shown = text;
      return;
    }
    if (!this.plain) return;
    const now = this.now();
    if (!force && now - this.lastPlainAt < this.plainIntervalMs) return;
    this.lastPlainAt = now;
    this.err.write(`${text}\n`);
  }

  /** Writes `text` to `out` (stdout, or stderr for a log line) without tearing the status line. */
  print(out: Writable, text: string): void {
    const shown = this.shown;
    this.clear();
    out.write(text);
    if (shown !== '') this.update(shown);
  }

  /** Leaves the last status on its own line (terminal) and stops redrawing. */
  finish(text: string): void {
    if (this.tty) {
      this.err.write(`\r${text}\x1b[K\n`);
      this.shown = '';
    } else {
      this.update(text, true);
    }
  }

  clear(): void {
    if (this.tty && this.shown !== '') this.err.write('\r\x1b[K');
    this.shown = '';
  }
}

/** `[#########...........]  45%` */
export function progressBar(fraction: number, width = 30): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const filled = Math.round(f * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}

export function formatMiB(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
