// The page: a feed of demo contents with like buttons, "my likes", trending, and who the
// visitor is. Counts are refreshed every few seconds while the tab is visible.

import * as api from './api.js';
import { card, update } from './cards.js';
import * as mine from './mine.js';
import * as session from './session.js';
import { announce, describe } from './status.js';
import * as store from './store.js';
import { FEED_IDS, titleOf } from './titles.js';
import * as trending from './trending.js';

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
let devTokens = false;

function signedIn() {
  return session.user() !== null || store.isAuthenticated();
}

function drawSession() {
  const user = session.user();
  $('whoami').textContent = session.describe(store.isAuthenticated());
  $('sign-out').hidden = user === null;
  $('demo-user').hidden = !devTokens;
  $('token-form').hidden = devTokens || signedIn();
  if (user && user.userId) $('demo-user-id').value = String(user.userId);
}

function currentView() {
  return location.hash === '#/mine' ? 'mine' : 'feed';
}

async function showView() {
  const view = currentView();
  $('feed-view').hidden = view !== 'feed';
  $('mine-view').hidden = view !== 'mine';
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (view === 'mine') {
    mine.reset();
    await mine.loadMore(signedIn()).catch(problem);
  }
}

function problem(error) {
  if (error.status === 401 && session.user()) {
    session.signOut();
    store.forgetStates();
    drawSession();
  }
  announce(describe(error), 'problem');
}

async function refreshAll() {
  try {
    await store.refresh(FEED_IDS.concat(mine.ids()));
    drawSession();
    await trending.refresh();
  } catch (error) {
    // A failed background refresh speaks only when it is something the visitor can act on.
    if (error.code !== 'waiting' && error.status !== 0) problem(error);
  }
}

async function like(id) {
  if (!signedIn()) {
    announce(devTokens ? 'To like, first pick a demo user at the top of the page.'
      : 'To like, please sign in first.');
    const picker = devTokens ? $('demo-user-id') : $('token-input');
    if (!picker.closest('[hidden]')) picker.focus();
    return;
  }
  if (store.isBusy(id)) return;
  try {
    const answer = await store.toggle(id);
    const noun = answer.count === 1 ? 'like' : 'likes';
    announce(`${answer.liked ? 'Liked' : 'Unliked'} "${titleOf(id)}": ${answer.count} ${noun}.`);
  } catch (error) {
    problem(error);
  }
}

async function changedUser(message) {
  store.forgetStates();
  drawSession();
  announce(message);
  await refreshAll();
  await showView();
}

function wire() {
  document.addEventListener('click', (event) => {
    const button = event.target.closest('button.like');
    if (button) like(button.dataset.contentId);
  });
  $('demo-user').addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const user = await session.becomeDemoUser(Number($('demo-user-id').value));
      await changedUser(`You are now ${user.name} (user ${user.userId}).`);
    } catch (error) {
      problem(error);
    }
  });
  $('token-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    session.useToken($('token-input').value.trim());
    $('token-input').value = '';
    await changedUser('Signed in.');
  });
  $('sign-out').addEventListener('click', async () => {
    session.signOut();
    await changedUser('Signed out. You can still see the counts.');
    $(devTokens ? 'demo-user-id' : 'token-input').focus();
  });
  $('mine-more').addEventListener('click', async () => {
    const before = mine.ids().length;
    await mine.loadMore(signedIn()).catch(problem);
    const next = document.querySelectorAll('#mine button.like')[before];
    if (next) next.focus();
  });
  window.addEventListener('hashchange', () => {
    // Only '#/...' names a view; the skip link's '#main' just moves focus.
    if (location.hash === '' || location.hash.startsWith('#/')) showView();
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refreshAll();
  });
  setInterval(() => {
    if (!document.hidden) refreshAll();
  }, REFRESH_MS);
}

async function boot() {
  for (const [id, name] of session.DEMO_USERS) {
    $('demo-user-id').append(new Option(`${name} (user ${id})`, String(id)));
  }
  session.restore();
  $('feed').replaceChildren(...FEED_IDS.map((id) => card(id)));
  store.subscribe(update);
  wire();
  devTokens = await api.devTokensOffered();
  drawSession();
  await refreshAll();
  await showView();
  document.body.dataset.ready = 'true';
}

boot();
