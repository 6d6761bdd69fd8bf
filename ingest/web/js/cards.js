// A content's card: title, like button (a toggle: aria-pressed, its label stays "Like" as a
// toggle's should; the style shows the state) and count. The same content
// may have a card in several views; `update` redraws all of them from the store.

import * as store from './store.js';
import { formatOf, titleOf } from './titles.js';

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

let drawn = 0;

const SVG = 'http://www.w3.org/2000/svg';

/** A thumbs-up drawn in SVG (an emoji needs a font the device may not have). */
function thumb() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'thumb');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', 'M2 10h4v11H2zm6 11h9.3a2 2 0 0 0 2-1.6l1.6-7.6A2 2 0 0 0 19 9.4h-5.2l.9-4.3'
    + 'A2.2 2.2 0 0 0 12.6 2.6L8 9.6z');
  svg.append(path);
  return svg;
}

/**
 * A new `<li>` card for content `id` (its decimal text); `note` is an optional extra line
 * (e.g. when liked).
 */
export function card(id, note) {
  const li = element('li', 'card');
  li.dataset.contentId = String(id);
  const title = element('h3', 'title', titleOf(id));
  title.id = `title-${(drawn += 1)}`;
  const meta = element('p', 'meta', `${formatOf(id)} · #${id}`);
  if (note) meta.append(` · ${note}`);

  const button = element('button', 'like');
  button.type = 'button';
  button.dataset.contentId = String(id);
  button.setAttribute('aria-pressed', 'false');
  button.setAttribute('aria-describedby', title.id);
  button.append(thumb(), element('span', 'label', 'Like'));

  const count = element('p', 'count');
  count.append(element('span', 'number', '–'), element('span', 'unit', ' likes'));

  const actions = element('div', 'actions');
  actions.append(button, count);
  li.append(title, meta, actions);
  draw(li, id);
  return li;
}

function draw(li, id) {
  const { count, liked } = store.get(id);
  const button = li.querySelector('button.like');
  button.setAttribute('aria-pressed', liked ? 'true' : 'false');
  if (store.isBusy(id)) button.setAttribute('aria-busy', 'true');
  else button.removeAttribute('aria-busy');
  li.querySelector('.number').textContent = count === undefined ? '–' : String(count);
  li.querySelector('.unit').textContent = count === 1 ? ' like' : ' likes';
}

/** Redraws every card of content `id`. */
export function update(id) {
  const selector = `li.card[data-content-id="${CSS.escape(String(id))}"]`;
  for (const li of document.querySelectorAll(selector)) draw(li, id);
}
