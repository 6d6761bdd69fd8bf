// The "trending now" panel, fed by GET /v1/trending (the pipeline's top-k of recent likes).

import * as api from './api.js';
import { titleOf } from './titles.js';

const LIMIT = 10;

/** Reads trending and redraws the panel. */
export async function refresh() {
  const answer = await api.trending(LIMIT);
  const list = document.getElementById('trending');
  const rows = answer.items.map(({ content_id: id, score }) => {
    const li = document.createElement('li');
    li.dataset.trendingId = String(id);
    const title = document.createElement('span');
    title.className = 'title';
    title.textContent = titleOf(id);
    const detail = document.createElement('span');
    detail.className = 'score';
    detail.textContent = `#${id} · ${score} recent ${score === 1 ? 'like' : 'likes'}`;
    li.append(title, detail);
    return li;
  });
  list.replaceChildren(...rows);
  document.getElementById('trending-note').hidden = rows.length > 0;
}
