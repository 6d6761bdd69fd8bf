// The web page in a real browser: Debian's chromium, headless, driven by playwright-core, against
// a fresh embedded `likes` (infra/browser/run starts it and sets LIKES_URL). The tests run in
// order and share the server's state: counts are asserted exactly, on the page and on the API.
// The helpers (opening a page, reading a card, picking a user...) are in pages.mjs.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DEMO_USERS } from '../../ingest/web/js/session.js';
import { titleOf } from '../../ingest/web/js/titles.js';
import {
  ARTIFACTS, BASE, DESKTOP, PHONE, SESSION, clickLike, closeBrowser, eventually, feedCard,
  launch, mint, open, opened, pickUser, served, shown, sleep, statusText, stored,
} from './pages.mjs';

const ITEM = 5; // liked and unliked by users 1 and 2
const KEY_ITEM = 2; // liked from the keyboard by user 3
const FAIL_ITEM = 7; // whose like the browser is made to refuse
const HELD_ITEM = 9; // whose like the browser holds back, to see the page before the answer

before(launch);
after(closeBrowser);

let first; // user 1's page
let second; // user 2's page

test('an anonymous visitor sees the counts and is asked to pick a demo user', async () => {
  const page = await open();
  assert.deepEqual(await shown(page, ITEM), { pressed: 'false', count: '0' });
  assert.equal(await page.locator('#feed li.card').count(), 40);
  let sent = 0;
  page.on('request', (r) => { if (r.url().includes('/like')) sent += 1; });
  await feedCard(page, ITEM).locator('button.like').click();
  await eventually('the hint', () => statusText(page), 'To like, first pick a demo user at the top of the page.');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'demo-user-id');
  assert.equal(sent, 0, 'an anonymous click sends nothing');
  assert.deepEqual(await shown(page, ITEM), { pressed: 'false', count: '0' });
});

test('a user likes an item and sees the count move', async () => {
  first = await open();
  await pickUser(first, 1);
  assert.deepEqual(await shown(first, ITEM), { pressed: 'false', count: '0' });
  const answer = await clickLike(first, ITEM, 'PUT');
  assert.equal(answer.status(), 200);
  assert.deepEqual(await shown(first, ITEM), { pressed: 'true', count: '1' });
  assert.equal(await served(ITEM), 1);
  await eventually('the announcement', () => statusText(first), `Liked "${titleOf(ITEM)}": 1 like.`);
});

test('the state is kept across a reload', async () => {
  await first.reload();
  await first.waitForSelector('body[data-ready="true"]');
  assert.equal(await first.textContent('#whoami'), `Signed in as ${new Map(DEMO_USERS).get(1)} (user 1).`);
  // A demo token is worth nothing elsewhere: it stays in localStorage, for every tab.
  const [kept, tabOnly] = await stored(first);
  assert.equal(kept.userId, 1);
  assert.equal(tabOnly, null);
  assert.deepEqual(await shown(first, ITEM), { pressed: 'true', count: '1' });
});

test('a second user sees the count, and the first sees theirs move without a reload', async () => {
  second = await open();
  await pickUser(second, 2);
  assert.deepEqual(await shown(second, ITEM), { pressed: 'false', count: '1' });
  await clickLike(second, ITEM, 'PUT');
  assert.deepEqual(await shown(second, ITEM), { pressed: 'true', count: '2' });
  assert.equal(await served(ITEM), 2);
  // The page reads the counts again every 5 s.
  await eventually('user 1 sees 2', () => shown(first, ITEM), { pressed: 'true', count: '2' }, 8000);
});

test('"my likes" lists what the user liked', async () => {
  await first.goto(`${BASE}/#/mine`);
  await first.waitForSelector('#mine li.card');
  assert.equal(await first.isHidden('#feed-view'), true);
  assert.deepEqual(await first.locator('#mine li.card').evaluateAll((cards) => cards.map((c) => c.dataset.contentId)), [String(ITEM)]);
  assert.deepEqual(await shown(first, ITEM, '#mine'), { pressed: 'true', count: '2' });
  await first.goto(`${BASE}/#/`);
  await first.waitForSelector('#feed-view:not([hidden])');
});

test('"my likes" pages through next_cursor', async () => {
  // User 5 likes 11 contents through the API; the view shows 10, then the 11th on "Show more".
  const token = await mint(5);
  const liked = Array.from({ length: 11 }, (_, i) => 11 + i);
  for (const id of liked) {
    const answer = await fetch(`${BASE}/v1/contents/${id}/like`, { method: 'PUT', headers: { authorization: `Bearer ${token}` } });
    assert.equal(answer.status, 200);
  }
  const page = await open();
  await pickUser(page, 5);
  await page.goto(`${BASE}/#/mine`);
  const ids = () => page.locator('#mine li.card').evaluateAll((cards) => cards.map((c) => Number(c.dataset.contentId)));
  const newestFirst = [...liked].reverse();
  await eventually('the first page', ids, newestFirst.slice(0, 10));
  assert.equal(await page.isVisible('#mine-more'), true);
  await page.click('#mine-more');
  await eventually('both pages', ids, newestFirst);
  assert.equal(await page.isHidden('#mine-more'), true);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.contentId), '11', 'focus moves to the first new card');
  assert.deepEqual(await shown(page, 11, '#mine'), { pressed: 'true', count: '1' });
});

test('trending shows the liked item', async () => {
  // The embedded pipeline posts trending every second; the page reads it every 5 s.
  await first.locator(`#trending li[data-trending-id="${ITEM}"]`).waitFor({ timeout: 12000 });
  assert.match(await first.textContent(`#trending li[data-trending-id="${ITEM}"]`), new RegExp(titleOf(ITEM)));
});

test('unlike', async () => {
  const answer = await clickLike(second, ITEM, 'DELETE');
  assert.equal(answer.status(), 200);
  assert.deepEqual(await shown(second, ITEM), { pressed: 'false', count: '1' });
  assert.equal(await served(ITEM), 1);
  await eventually('user 1 sees 1', () => shown(first, ITEM), { pressed: 'true', count: '1' }, 8000);
});

test('liking works from the keyboard alone', async () => {
  const page = await open();
  await pickUser(page, 3);
  await page.reload(); // focus starts at the top of the page again
  await page.waitForSelector('body[data-ready="true"]');
  const target = `#feed li.card[data-content-id="${KEY_ITEM}"] button.like`;
  let tabs = 0;
  while (!(await page.evaluate((selector) => document.activeElement === document.querySelector(selector), target))) {
    tabs += 1;
    assert.ok(tabs <= 20, `Tab did not reach the like button of ${KEY_ITEM}`);
    await page.keyboard.press('Tab');
  }
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused button shows its focus');
  // A press while the last one is unanswered is ignored (the button is aria-busy): wait.
  const press = async (key, method) => {
    const answered = page.waitForResponse((r) => r.url().endsWith(`/v1/contents/${KEY_ITEM}/like`) && r.request().method() === method);
    await page.keyboard.press(key);
    assert.equal((await answered).status(), 200);
    await page.locator(`${target}:not([aria-busy])`).waitFor();
  };
  await press('Space', 'PUT');
  assert.deepEqual(await shown(page, KEY_ITEM), { pressed: 'true', count: '1' });
  assert.equal(await served(KEY_ITEM), 1);
  await press('Enter', 'DELETE');
  assert.deepEqual(await shown(page, KEY_ITEM), { pressed: 'false', count: '0' });
  assert.equal(await served(KEY_ITEM), 0);
});

test('a like shows at once, busy, while its PUT is in flight', async () => {
  const page = await open();
  await pickUser(page, 7);
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let arrived;
  const sent = new Promise((resolve) => { arrived = resolve; });
  let puts = 0;
  await page.route(`**/v1/contents/${HELD_ITEM}/like`, async (route) => {
    puts += 1;
    arrived();
    await held;
    await route.continue();
  });
  const button = feedCard(page, HELD_ITEM).locator('button.like');
  const state = async () => ({ ...(await shown(page, HELD_ITEM)), busy: await button.getAttribute('aria-busy') });
  assert.deepEqual(await state(), { pressed: 'false', count: '0', busy: null });
  await button.click();
  await sent;
  assert.deepEqual(await state(), { pressed: 'true', count: '1', busy: 'true' });
  assert.equal(await served(HELD_ITEM), 0, 'the PUT has not reached the service yet');
  await button.click(); // ignored while busy
  assert.deepEqual(await state(), { pressed: 'true', count: '1', busy: 'true' });
  const answered = page.waitForResponse((r) => r.url().endsWith(`/v1/contents/${HELD_ITEM}/like`));
  release();
  assert.equal((await answered).status(), 200);
  await eventually('the answer shown', state, { pressed: 'true', count: '1', busy: null });
  assert.equal(puts, 1);
  assert.equal(await served(HELD_ITEM), 1);
});

test('a 503 and a 429 roll the like back and say when to try again', async () => {
  const page = await open();
  await pickUser(page, 4);
  let refusals = 0;
  let answer = { status: 503, retryAfter: '1', code: 'unavailable' };
  await page.route(`**/v1/contents/${FAIL_ITEM}/like`, (route) => {
    refusals += 1;
    route.fulfill({
      status: answer.status,
      headers: { 'retry-after': answer.retryAfter },
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: answer.code, message: 'refused by the test' } }),
    });
  });
  await clickLike(page, FAIL_ITEM, 'PUT');
  await eventually('rolled back', () => shown(page, FAIL_ITEM), { pressed: 'false', count: '0' });
  await eventually('503 said', () => statusText(page), 'The service is busy and did not save that. Please try again in 1 s.');
  await sleep(1100); // Retry-After: 1
  answer = { status: 429, retryAfter: '3', code: 'rate_limited' };
  await clickLike(page, FAIL_ITEM, 'PUT');
  await eventually('rolled back', () => shown(page, FAIL_ITEM), { pressed: 'false', count: '0' });
  await eventually('429 said', () => statusText(page), 'Lots of activity right now. Please try again in 3 s.');
  // Within Retry-After the page waits instead of asking again.
  await feedCard(page, FAIL_ITEM).locator('button.like').click();
  await eventually('still waiting', () => statusText(page), 'Lots of activity right now. Please try again in 3 s.');
  assert.equal(refusals, 2);
  assert.deepEqual(await shown(page, FAIL_ITEM), { pressed: 'false', count: '0' });
  assert.equal(await served(FAIL_ITEM), 0);
});

test('without dev tokens there is no user picker, and liking asks to sign in', async () => {
  const page = await open(DESKTOP, (p) => p.route('**/v1/dev/token', (route) => route.fulfill({
    status: 404,
    contentType: 'application/json',
    body: '{"error":{"code":"not_found","message":"no such route"}}',
  })));
  assert.equal(await page.isHidden('#demo-user'), true);
  assert.equal(await page.isVisible('#token-form'), true);
  await feedCard(page, ITEM).locator('button.like').click();
  await eventually('the hint', () => statusText(page), 'To like, please sign in first.');
});

test('a pasted token is kept for this tab only (sessionStorage), never in localStorage', async () => {
  const token = await mint(8);
  const noDemo = (p) => p.route('**/v1/dev/token', (route) => route.fulfill({ status: 404, body: '' }));
  const page = await open(DESKTOP, noDemo);
  await page.fill('#token-input', token);
  await page.click('#token-form button[type="submit"]');
  const me = 'Signed in as User 8 (user 8).';
  await eventually('who am I', () => page.textContent('#whoami'), me);
  const [kept, tabOnly] = await stored(page);
  assert.equal(kept, null, 'nothing in localStorage');
  assert.equal(tabOnly.token, token);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(await page.textContent('#whoami'), me, 'a reload keeps it');
  const tab = await page.context().newPage();
  await tab.goto(`${BASE}/`);
  await tab.waitForSelector('body[data-ready="true"]');
  assert.equal(await tab.textContent('#whoami'), 'You are browsing anonymously.', 'another tab does not');
  await tab.close();
  // A token an older page left in localStorage moves to sessionStorage.
  const old = await open(DESKTOP, async (p) => {
    await noDemo(p);
    await p.addInitScript(([key, value]) => {
      if (!sessionStorage.getItem(key)) localStorage.setItem(key, value);
    }, [SESSION, JSON.stringify({ token, userId: '8', name: 'User 8' })]);
  });
  assert.equal(await old.textContent('#whoami'), me);
  assert.deepEqual((await stored(old)).map((s) => s && s.token), [null, token]);
});

test('a 503 to the dev-token probe offers no picker and holds back no read', async () => {
  // Only a 400 (the route is there and refused the empty body) means demo tokens are offered;
  // the probe's 503 and its Retry-After must not stop the first read of the counts either.
  const page = await open(DESKTOP, (p) => p.route('**/v1/dev/token', (route) => route.fulfill({
    status: 503,
    headers: { 'retry-after': '30' },
    contentType: 'application/json',
    body: '{"error":{"code":"unavailable","message":"refused by the test"}}',
  }), { times: 1 }));
  assert.deepEqual(await shown(page, ITEM), { pressed: 'false', count: '1' });
  assert.equal(await page.isHidden('#demo-user'), true);
  assert.equal(await page.isVisible('#token-form'), true);
});

test('an id above 2^53 (the largest u64) is kept exactly: panel, card, batchGet and PUT', async () => {
  const BIG = '18446744073709551615'; // a Number would round it to ...552000
  const answer = (body) => (route) => route.fulfill({ status: 200, contentType: 'application/json', body });
  const page = await open(DESKTOP, async (p) => {
    await p.route('**/v1/trending?*', answer(`{"items":[{"content_id":${BIG},"score":3}]}`));
    await p.route('**/v1/me/likes?*', answer(`{"items":[{"content_id":${BIG},"liked_at_ms":1700000000000}],"next_cursor":null}`));
  });
  assert.match(await page.textContent(`#trending li[data-trending-id="${BIG}"]`), new RegExp(`#${BIG} · 3 recent likes`));
  await pickUser(page, 6);
  const read = page.waitForRequest((r) => r.url().endsWith('/v1/contents:batchGet') && r.postData().includes(`${BIG}]`));
  await page.goto(`${BASE}/#/mine`);
  await read;
  const card = page.locator('#mine li.card');
  await eventually('the card', () => card.evaluateAll((cards) => cards.map((c) => c.dataset.contentId)), [BIG]);
  assert.equal(await card.locator('.title').textContent(), `Content ${BIG}`);
  assert.match(await card.locator('.meta').textContent(), new RegExp(`#${BIG} · liked`));
  await eventually('its count, from the real batchGet', () => shown(page, BIG, '#mine'), { pressed: 'false', count: '0' });
  const put = page.waitForResponse((r) => r.request().method() === 'PUT');
  await card.locator('button.like').click();
  assert.equal((await put).url(), `${BASE}/v1/contents/${BIG}/like`);
  assert.equal((await put).status(), 200);
  await eventually('liked', () => shown(page, BIG, '#mine'), { pressed: 'true', count: '1' });
  assert.equal(await served(BIG), 1);
});

test('screenshots at desktop and phone widths; nothing overflows the phone', async () => {
  await first.screenshot({ path: join(ARTIFACTS, 'desktop-1280x800.png') });
  await first.screenshot({ path: join(ARTIFACTS, 'desktop-1280x800-full.png'), fullPage: true });
  const phone = await open(PHONE);
  await pickUser(phone, 1);
  const widths = await phone.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(widths[0] <= widths[1], `the page is ${widths[0]} px wide on a ${widths[1]} px screen`);
  await eventually('user 1 on the phone', () => shown(phone, ITEM), { pressed: 'true', count: '1' });
  await phone.screenshot({ path: join(ARTIFACTS, 'phone-390x844.png') });
  await phone.screenshot({ path: join(ARTIFACTS, 'phone-390x844-full.png'), fullPage: true });
  console.log(`screenshots in ${ARTIFACTS}`);
});

test('no page had a script error or a Content-Security-Policy refusal', () => {
  assert.deepEqual(opened.flatMap((page) => page.problems), []);
});
