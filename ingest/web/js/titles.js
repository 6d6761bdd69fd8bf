// The service knows content ids, not titles: the demo feed gives each id a made-up title.

const ADJECTIVES = ['Quiet', 'Golden', 'Tiny', 'Electric', 'Lost', 'Curious', 'Midnight',
  'Rusty', 'Brave', 'Hidden', 'Velvet', 'Northern', 'Paper', 'Wild', 'Silver', 'Lazy', 'Bright'];
const NOUNS = ['harbour', 'robot', 'garden', 'recipe', 'comet', 'lighthouse', 'bicycle', 'melody',
  'forest', 'teapot', 'glacier', 'notebook', 'orchard', 'river', 'lantern', 'market', 'fox',
  'kite', 'tram', 'volcano'];
const FORMATS = ['video', 'photo', 'post', 'review', 'song'];

/** The ids of the demo feed: 1 to 40, as strings (the page keeps every id as its text). */
export const FEED_IDS = Array.from({ length: 40 }, (_, i) => String(i + 1));

/** A stable made-up title for a content id (its decimal text; a number below 2^53 too). */
export function titleOf(id) {
  const n = Number(id);
  if (!Number.isSafeInteger(n) || n < 1) return `Content ${id}`;
  const adjective = ADJECTIVES[(n * 7) % ADJECTIVES.length];
  const noun = NOUNS[(n * 13 + 5) % NOUNS.length];
  return `The ${adjective} ${noun}`;
}

/** What kind of content the demo pretends an id is. */
export function formatOf(id) {
  try {
    return FORMATS[Number(BigInt(id) % BigInt(FORMATS.length))] || 'post';
  } catch {
    return 'post';
  }
}
