import { LtxvfsError } from '../util/errors.js';
import { Crc64 } from './checksum.js';
import { CHECKSUM_FLAG, PAGE_FLAG_SIZE, PAGE_HEADER_SIZE, TRAILER_SIZE } from './constants.js';

/** Bytes at the end of an LTX file that hold its file checksum (the last trailer field). */
const FILE_CHECKSUM_SIZE = 8;

/**
 * The LTX file checksum (trailer, last 8 bytes), checked over a file streamed in order. The
 * checksum is bit 63 | CRC-64/GO-ISO over the header, each page frame's header (and size prefix)
 * followed by the page's *decoded* bytes, and everything after the last page up to the checksum
 * itself. So a caller passes the header and the tail as raw bytes (`update`) and each frame with
 * its decoded page (`updateFrame`). `verify()` throws LTX_BAD_CHECKSUM unless exactly `size`
 * bytes were covered and they match.
 */
export class LtxFileChecksum {
  private readonly crc: Crc64;
  private received: number;
  private readonly stored = new Uint8Array(FILE_CHECKSUM_SIZE);

  /** `resume` continues a stream stopped after `received` bytes whose CRC so far was `crc`. */
  constructor(
    private readonly size: number,
    resume?: { received: number; crc: bigint },
  ) {
    if (!Number.isSafeInteger(size) || size < TRAILER_SIZE) {
      throw new LtxvfsError('LTX_BAD_CHECKSUM', `a ${size}-byte object is too short to hold an LTX trailer`);
    }
    if (resume !== undefined && (resume.received < 0 || resume.received > size - FILE_CHECKSUM_SIZE)) {
      throw new LtxvfsError(
        'LTX_BAD_CHECKSUM',
        `cannot resume a ${size}-byte object at byte ${resume.received}`,
      );
    }
    this.crc = new Crc64(resume?.crc ?? 0n);
    this.received = resume?.received ?? 0;
  }

  /** Where a stream stopped, to resume it later; only before the stored checksum bytes arrived. */
  progress(): { received: number; crc: bigint } | undefined {
    if (this.received > this.size - FILE_CHECKSUM_SIZE) return undefined;
    return { received: this.received, crc: this.crc.digest() };
  }

  /** The next bytes of the file, hashed as they are (the header; what follows the last page). */
  update(chunk: Uint8Array): this {
    const covered = this.size - FILE_CHECKSUM_SIZE;
    const start = this.received;
    const end = start + chunk.length;
    this.checkRoom(end);
    if (start < covered) this.crc.update(chunk.subarray(0, Math.min(chunk.length, covered - start)));
    if (end > covered) {
      const from = Math.max(start, covered);
      this.stored.set(chunk.subarray(from - start), from - covered);
    }
    this.received = end;
    return this;
  }

  /** The next page frame of the file and the page it decoded to. */
  updateFrame(frame: Uint8Array, page: Uint8Array): this {
    const end = this.received + frame.length;
    this.checkRoom(end);
    if (end > this.size - FILE_CHECKSUM_SIZE || frame.length < PAGE_HEADER_SIZE) {
      throw new LtxvfsError('LTX_BAD_CHECKSUM', `a page frame at byte ${this.received} overlaps the trailer`);
    }
    const flags = ((frame[4] ?? 0) << 8) | (frame[5] ?? 0);
    const prefix = (flags & PAGE_FLAG_SIZE) !== 0 ? PAGE_HEADER_SIZE + 4 : PAGE_HEADER_SIZE;
    this.crc.update(frame.subarray(0, prefix)).update(page);
    this.received = end;
    return this;
  }

  verify(): void {
    if (this.received !== this.size) {
      throw new LtxvfsError(
        'LTX_BAD_CHECKSUM',
        `file checksum not checked: ${this.received} of ${this.size} bytes arrived`,
      );
    }
    const stored = new DataView(this.stored.buffer).getBigUint64(0);
    const computed = CHECKSUM_FLAG | this.crc.digest();
    if (stored !== computed) {
      throw new LtxvfsError(
        'LTX_BAD_CHECKSUM',
        `file checksum mismatch: trailer says 0x${stored.toString(16).padStart(16, '0')}, contents give 0x${computed.toString(16).padStart(16, '0')}`,
      );
    }
  }

  private checkRoom(end: number): void {
    if (end > this.size) {
      throw new LtxvfsError('LTX_BAD_CHECKSUM', `more than the ${this.size} bytes the object should hold`);
    }
  }
}
