// Page 1 as a replica presents it is one fact shared with the follower (src/follow): it lives
// in src/replica/page-one.ts.
export { patchPageOne } from '../src/replica/page-one.js';
