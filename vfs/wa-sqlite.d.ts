// Local declarations for the parts of @journeyapps/wa-sqlite that the package's own types leave out
// (FacadeVFS and the Emscripten module object the VFS talks to).

/** The subset of the Emscripten module (Asyncify build) that ltxvfs uses. */
declare interface WaSqliteModule {
  HEAPU8: Uint8Array;
  UTF8ToString(ptr: number): string;
  setValue(ptr: number, value: number, type: 'i32' | '*'): void;
  getValue(ptr: number, type: 'i32' | '*'): number;
  _sqlite3_malloc(size: number): number;
  _sqlite3_free(ptr: number): void;
  /** Asyncify: suspend the wasm stack until the promise settles (must never reject). */
  handleAsync<T>(start: () => Promise<T>): T;
  ccall(
    name: string,
    returnType: string | null,
    argTypes: string[],
    args: unknown[],
    opts?: { async?: boolean },
  ): unknown;
}

declare module '@journeyapps/wa-sqlite/src/FacadeVFS.js' {
  import * as VFS from '@journeyapps/wa-sqlite/src/VFS.js';

  /** Byte-array view of wasm memory that survives memory growth; not a real Uint8Array. */
  export interface DataArray {
    readonly length: number;
    readonly byteLength: number;
    readonly byteOffset: number;
    set(array: ArrayLike<number>, offset?: number): void;
    fill(value: number, start?: number, end?: number): void;
    subarray(begin?: number, end?: number): Uint8Array;
    slice(begin?: number, end?: number): Uint8Array;
  }

  /** DataView-like proxy restricted to one type (Int32 or BigInt64), little endian only. */
  export interface TypedView {
    readonly byteOffset: number;
    getInt32(byteOffset: number, littleEndian: true): number;
    setInt32(byteOffset: number, value: number, littleEndian: true): void;
    getBigInt64(byteOffset: number, littleEndian: true): bigint;
    setBigInt64(byteOffset: number, value: bigint, littleEndian: true): void;
  }

  export class FacadeVFS extends VFS.Base {
    constructor(name: string, module: object);
    jOpen(
      filename: string | null,
      pFile: number,
      flags: number,
      pOutFlags: TypedView,
    ): number | Promise<number>;
    jDelete(filename: string, syncDir: number): number | Promise<number>;
    jAccess(filename: string, flags: number, pResOut: TypedView): number | Promise<number>;
    jFullPathname(filename: string, zOut: Uint8Array): number | Promise<number>;
    jGetLastError(zBuf: Uint8Array): number | Promise<number>;
    jClose(pFile: number): number | Promise<number>;
    jRead(pFile: number, pData: DataArray, iOffset: number): number | Promise<number>;
    jWrite(pFile: number, pData: DataArray, iOffset: number): number | Promise<number>;
    jTruncate(pFile: number, size: number): number | Promise<number>;
    jSync(pFile: number, flags: number): number | Promise<number>;
    jFileSize(pFile: number, pSize: TypedView): number | Promise<number>;
    jLock(pFile: number, lockType: number): number | Promise<number>;
    jUnlock(pFile: number, lockType: number): number | Promise<number>;
    jCheckReservedLock(pFile: number, pResOut: TypedView): number | Promise<number>;
    jFileControl(pFile: number, op: number, pArg: DataView): number | Promise<number>;
    jSectorSize(pFile: number): number | Promise<number>;
    jDeviceCharacteristics(pFile: number): number | Promise<number>;
    /** The raw entry points the module calls (pointers into wasm memory, 64-bit offsets split). */
    xRead(
      pFile: number,
      pData: number,
      iAmt: number,
      iOffsetLo: number,
      iOffsetHi: number,
    ): number | Promise<number>;
    xFileSize(pFile: number, pSize: number): number | Promise<number>;
    xAccess(pVfs: number, zName: number, flags: number, pResOut: number): number | Promise<number>;
    xCheckReservedLock(pFile: number, pResOut: number): number | Promise<number>;
  }
}
