/** Litestream stores the LTX header timestamp as S3 metadata under this key (RFC3339Nano). */
export const LITESTREAM_TIMESTAMP_METADATA = 'litestream-timestamp';

export { formatRfc3339Nano, parseRfc3339 } from '../util/rfc3339.js';
