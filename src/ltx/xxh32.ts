// biome-ignore-all lint/style/noNonNullAssertion: byte codec; every typed-array index is inside a length checked before the loop, and a per-byte check would cost in the hot path
/**
 * xxHash32, used only by the legacy LZ4 frame encoding (descriptor checksum, block and content
 * checksums). Written here rather than taken from a package: it is ~40 lines, runs only on legacy
 * pages, and every xxhash package on npm is either WASM with async init or slower for short inputs.
 */
const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0]! === 1;

function readU32LE(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

export function xxh32(data: Uint8Array, seed = 0, start = 0, end = data.length): number {
  let i = start;
  const len = end - start;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    const limit = end - 16;
    if (LITTLE_ENDIAN && ((data.byteOffset + i) & 3) === 0) {
      // Aligned: read the stripes as 32-bit words (about 2x faster than byte loads).
      const words = new Int32Array(data.buffer, data.byteOffset + i, ((end - i) >> 4) << 2);
      for (let w = 0; w < words.length; w += 4) {
        v1 = Math.imul(rotl((v1 + Math.imul(words[w]!, P2)) | 0, 13), P1);
        v2 = Math.imul(rotl((v2 + Math.imul(words[w + 1]!, P2)) | 0, 13), P1);
        v3 = Math.imul(rotl((v3 + Math.imul(words[w + 2]!, P2)) | 0, 13), P1);
        v4 = Math.imul(rotl((v4 + Math.imul(words[w + 3]!, P2)) | 0, 13), P1);
      }
      i += words.length << 2;
    }
    while (i <= limit) {
      v1 = Math.imul(rotl((v1 + Math.imul(readU32LE(data, i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(readU32LE(data, i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(readU32LE(data, i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(readU32LE(data, i + 12), P2)) | 0, 13), P1);
      i += 16;
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  while (i + 4 <= end) {
    h = Math.imul(rotl((h + Math.imul(readU32LE(data, i), P3)) | 0, 17), P4);
    i += 4;
  }
  while (i < end) {
    h = Math.imul(rotl((h + Math.imul(data[i]!, P5)) | 0, 11), P1);
    i++;
  }
  h = Math.imul(h ^ (h >>> 15), P2);
  h = Math.imul(h ^ (h >>> 13), P3);
  return (h ^ (h >>> 16)) >>> 0;
}
