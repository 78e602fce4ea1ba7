import { present } from '../util/invariant.js';
/**
 * The sandwich-review app's data: a schema and a deterministic generator of plausible reviews,
 * shared by the demo and the benchmark so both show the same kind of database.
 */
export const REVIEWS_SCHEMA = `
CREATE TABLE IF NOT EXISTS reviews (
  id INTEGER PRIMARY KEY,
  sandwich TEXT NOT NULL,
  reviewer TEXT NOT NULL,
  rating INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_by_sandwich ON reviews (sandwich, rating);
`;

export interface Review {
  sandwich: string;
  reviewer: string;
  rating: number;
  body: string;
  createdAt: number;
}

const SANDWICHES = [
  'Reuben',
  'Cubano',
  'Banh mi',
  'BLT',
  'Club',
  'Croque monsieur',
  'Muffuletta',
  'Po boy',
  'Grilled cheese',
  'Philly cheesesteak',
  'Katsu sando',
  'Tuna melt',
  'Caprese',
  'Falafel wrap',
  'Egg salad',
  'French dip',
];
const REVIEWERS = ['ada', 'ben', 'cleo', 'dev', 'emil', 'fern', 'gus', 'hana', 'ivo', 'juno', 'kai', 'lea'];
const OPENERS = ['Honestly', 'Surprisingly', 'As always', 'This time', 'Against all odds', 'Once again'];
const VERDICTS = [
  'the bread was perfectly toasted',
  'the filling was generous',
  'it fell apart in my hands',
  'the pickles stole the show',
  'the sauce was a little shy',
  'it was worth the queue',
  'the cheese pull was legendary',
  'it needed more mustard',
];

// The same seed makes the same database.
export { seededRandom } from '../util/random.js';

function pick<T>(random: () => number, items: readonly T[]): T {
  return present(items[Math.floor(random() * items.length)], `an item of ${items.length}`);
}

/** One review; `bodySentences` sets its size (each sentence is ~45 bytes). */
export function makeReview(random: () => number, createdAt: number, bodySentences = 2): Review {
  const sandwich = pick(random, SANDWICHES);
  const rating = 1 + Math.floor(random() * 5);
  const sentences: string[] = [];
  for (let i = 0; i < bodySentences; i++) {
    sentences.push(`${pick(random, OPENERS)}, ${pick(random, VERDICTS)}.`);
  }
  return { sandwich, reviewer: pick(random, REVIEWERS), rating, body: sentences.join(' '), createdAt };
}

export const INSERT_REVIEW =
  'INSERT INTO reviews (sandwich, reviewer, rating, body, created_at) VALUES (@sandwich, @reviewer, @rating, @body, @createdAt)';

export function stars(rating: number): string {
  return '*'.repeat(rating).padEnd(5, '.');
}
