// The browser test's helpers (like_page.test.mjs): the browser, opening a page on the running
// `likes` (LIKES_URL), waiting for a state, and reading what a page shows and what the API says.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { DEMO_USERS } from '../../ingest/web/js/session.js';

export const BASE = process.env.LIKES_URL;
const CHROMIUM = process.env.LIKES_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = process.env.LIKES_BROWSER_ARTIFACTS;
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

let browser;
export const opened = []; // every page, to check for script errors and CSP violations at the end

export async function launch() {
  assert.ok(BASE, 'LIKES_URL must name the running likes (infra/browser/run sets it)');
  assert.ok(ARTIFACTS, 'LIKES_BROWSER_ARTIFACTS must name where screenshots go');
  mkdirSync(ARTIFACTS, { recursive: true });
  // As root, chromium's sandbox cannot start.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

export async function closeBrowser() {
  await browser?.close();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `read` until it deep-equals `expected`; fails with the last value after `timeoutMs`. */
export async function eventually(what, read, expected, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await read();
    try {
      assert.deepEqual(last, expected);
      return;
    } catch {
      if (Date.now() > deadline) assert.fail(`${what}: wanted ${JSON.stringify(expected)}, still ${JSON.stringify(last)}`);
    }
    await sleep(100);
  }
}

/** A new browser context on the page, ready (its first read done). */
export async function open(viewport = DESKTOP, prepare = async () => {}) {
  const context = await browser.newContext({ viewport, isMobile: viewport === PHONE, hasTouch: viewport === PHONE });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A 4xx the page expects (the dev-token probe's 400, a refused like) is logged as a failed
    // load; anything else logged as an error (a CSP refusal included) is a problem.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      page.problems.push(`console: ${message.text()}`);
    }
  });
  await prepare(page);
  await page.goto(`${BASE}/`);
  await page.waitForSelector('body[data-ready="true"]');
  opened.push(page);
  return page;
}

export const feedCard = (page, id) => page.locator(`#feed li.card[data-content-id="${id}"]`);

/** What the feed shows for content `id`: the button's aria-pressed and the count. */
export async function shown(page, id, list = '#feed') {
  const card = page.locator(`${list} li.card[data-content-id="${id}"]`);
  return {
    pressed: await card.locator('button.like').getAttribute('aria-pressed'),
    count: await card.locator('.number').textContent(),
  };
}

/** The count the API answers, outside the browser. */
export async function served(id) {
  const response = await fetch(`${BASE}/v1/contents/${id}`);
  assert.equal(response.status, 200);
  return (await response.json()).count;
}

export async function pickUser(page, userId) {
  await page.selectOption('#demo-user-id', String(userId));
  const minted = page.waitForResponse((r) => r.url().endsWith('/v1/dev/token') && r.status() === 200);
  // The first read as the new user: the page shows the user's states once it is answered.
  const read = page.waitForResponse((r) => r.url().endsWith('/v1/contents:batchGet')
    && r.request().headers().authorization !== undefined);
  await page.click('#demo-user button[type="submit"]');
  const token = (await (await minted).json()).token;
  assert.equal((await read).request().headers().authorization, `Bearer ${token}`);
  await eventually('who am I', () => page.textContent('#whoami'), `Signed in as ${new Map(DEMO_USERS).get(userId)} (user ${userId}).`);
}

/** A demo token for `userId`, minted outside the browser. */
export async function mint(userId) {
  const answer = await fetch(`${BASE}/v1/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: userId }),
  });
  assert.equal(answer.status, 200);
  return (await answer.json()).token;
}

export const SESSION = 'likes.session';
/** Where the page keeps its session: [localStorage's, sessionStorage's], parsed. */
export const stored = (page) => page.evaluate((key) => [localStorage, sessionStorage]
  .map((storage) => JSON.parse(storage.getItem(key) || 'null')), SESSION);

/** Clicks content `id`'s like button and waits for the answer to the PUT or DELETE. */
export async function clickLike(page, id, method) {
  const answered = page.waitForResponse((r) => r.url().endsWith(`/v1/contents/${id}/like`) && r.request().method() === method);
  await feedCard(page, id).locator('button.like').click();
  return answered;
}

export const statusText = (page) => page.textContent('#status');
