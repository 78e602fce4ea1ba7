// biome-ignore-all lint/style/noNonNullAssertion: checksum loop; every word index is below the view length the loop is bounded by, and a per-word check would cost in the hot path
/**
 * SQLite's WAL checksum: over 8-byte units (a, b) read as two u32 in the byte order chosen by the
 * WAL magic, s0 += a + s1; s1 += b + s0 (mod 2^32). Cumulative: each frame continues from the
 * previous frame's (s0, s1). `data.length` must be a multiple of 8.
 */
export function walChecksum(data: Uint8Array, bigEndian: boolean, s0: number, s1: number): [number, number] {
  const n = data.length & ~7;
  let a = s0 >>> 0;
  let b = s1 >>> 0;
  if (!bigEndian && (data.byteOffset & 3) === 0 && HOST_LITTLE_ENDIAN) {
    // Fast path: a u32 view reads little-endian words directly on little-endian hosts.
    const words = new Uint32Array(data.buffer, data.byteOffset, n >>> 2);
    for (let i = 0; i < words.length; i += 2) {
      a = (a + words[i]! + b) >>> 0;
      b = (b + words[i + 1]! + a) >>> 0;
    }
    return [a, b];
  }
  const view = new DataView(data.buffer, data.byteOffset, n);
  const le = !bigEndian;
  for (let i = 0; i < n; i += 8) {
    a = (a + view.getUint32(i, le) + b) >>> 0;
    b = (b + view.getUint32(i + 4, le) + a) >>> 0;
  }
  return [a, b];
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
