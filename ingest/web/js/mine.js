// The "my likes" view: GET /v1/me/likes, newest first, a page at a time (next_cursor).

import * as api from './api.js';
import { card } from './cards.js';
import * as store from './store.js';

const PAGE = 10;
let cursor = null;
let shown = [];
let loading = false;

function note(text) {
  const el = document.getElementById('mine-note');
  el.textContent = text;
  el.hidden = !text;
}

/** The ids the view shows, for the periodic refresh. */
export function ids() {
  return shown;
}

/** Empties the view (another user, or opening it again). */
export function reset() {
  cursor = null;
  shown = [];
  document.getElementById('mine').replaceChildren();
  document.getElementById('mine-more').hidden = true;
  note('');
}

/** Loads the next page (the first after `reset`). Throws the `ApiError` of a failed call. */
export async function loadMore(signedIn) {
  if (!signedIn) {
    reset();
    note('Sign in or pick a demo user to see what you liked.');
    return;
  }
  if (loading) return;
  loading = true;
  try {
    const page = await api.myLikes(cursor, PAGE);
    const pageIds = page.items.map((item) => item.content_id);
    if (pageIds.length > 0) await store.refresh(pageIds);
    const list = document.getElementById('mine');
    for (const item of page.items) {
      const when = new Date(item.liked_at_ms).toLocaleString();
      list.append(card(item.content_id, `liked ${when}`));
    }
    shown = shown.concat(pageIds);
    cursor = page.next_cursor;
    document.getElementById('mine-more').hidden = !cursor;
    note(shown.length === 0 ? 'Nothing yet: like something in the feed.' : '');
  } finally {
    loading = false;
  }
}
