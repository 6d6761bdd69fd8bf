// What the page knows about each content: its count and whether the caller likes it. Every view
// draws from here, so a change shows on every card of the same content at once.

import * as api from './api.js';

// id (its decimal text, as api.js reads it) -> { count, liked } (liked is undefined while the
// caller is anonymous)
const items = new Map();
// ids with a like or unlike in flight: a refresh must not overwrite their optimistic state
const inFlight = new Set();
// id -> performance.now() of the last answer to an action: older refreshes do not apply to it
const actedAt = new Map();
const listeners = new Set();
let authenticated = false;

export function get(id) {
  return items.get(id) || { count: undefined, liked: undefined };
}

export function isBusy(id) {
  return inFlight.has(id);
}

/** True when the last read named the caller (a token, or a gateway's header). */
export function isAuthenticated() {
  return authenticated;
}

/** `fn(id)` after the state of `id` changed. */
export function subscribe(fn) {
  listeners.add(fn);
}

function notify(id) {
  for (const fn of listeners) fn(id);
}

function put(id, state) {
  items.set(id, state);
  notify(id);
}

/** Forgets every caller's state (after signing in or out); the counts stay. */
export function forgetStates() {
  authenticated = false;
  for (const [id, state] of items) put(id, { count: state.count, liked: undefined });
}

/** Reads the counts and states of `ids` (in calls of at most 100). */
export async function refresh(ids) {
  const unique = [...new Set(ids)];
  for (let i = 0; i < unique.length; i += 100) {
    const started = performance.now();
    const answer = await api.batchGet(unique.slice(i, i + 100));
    for (const item of answer.items) {
      authenticated = authenticated || typeof item.liked === 'boolean';
      const id = item.content_id;
      if (inFlight.has(id) || (actedAt.get(id) || 0) > started) continue;
      const before = items.get(id);
      if (before && before.count === item.count && before.liked === item.liked) continue;
      put(id, { count: item.count, liked: item.liked });
    }
  }
}

/**
 * Likes or unlikes `id` at once on screen, then asks the service; the answer's state and count
 * replace the guess, and an error puts back what was shown before. Resolves to the answer.
 */
export async function toggle(id) {
  const before = get(id);
  const liked = !before.liked;
  const count = before.count === undefined ? undefined
    : Math.max(0, before.count + (liked ? 1 : -1));
  inFlight.add(id);
  put(id, { count, liked });
  try {
    const answer = await api.setLiked(id, liked);
    put(id, { count: answer.count, liked: answer.liked });
    authenticated = true;
    return answer;
  } catch (error) {
    put(id, before);
    throw error;
  } finally {
    inFlight.delete(id);
    actedAt.set(id, performance.now());
    notify(id);
  }
}
