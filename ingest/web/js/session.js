// Who the visitor is: anonymous, a demo user (a dev token from POST /v1/dev/token, offered only
// by the loopback demo), or someone with a token of their own. A demo session is kept in
// localStorage (its token is worth nothing elsewhere), so a reload or another tab keeps the
// user; a pasted token is a real credential and is kept in sessionStorage only: this tab, until
// it is closed.

import * as api from './api.js';

const KEY = 'likes.session';
export const DEMO_USERS = [
  [1, 'Ada'], [2, 'Grace'], [3, 'Linus'], [4, 'Margaret'],
  [5, 'Alan'], [6, 'Barbara'], [7, 'Ken'], [8, 'Radia'],
];

let current = null; // { token, userId, name, demo } or null

function stored(storage) {
  try {
    const saved = JSON.parse(storage.getItem(KEY) || 'null');
    return saved && typeof saved.token === 'string' ? saved : null;
  } catch {
    return null;
  }
}

/**
 * The stored session, if any, made current. One in localStorage without `demo` (an older page
 * kept pasted tokens there) moves to sessionStorage.
 */
export function restore() {
  adopt(stored(sessionStorage) || stored(localStorage));
  return current;
}

export function user() {
  return current;
}

function adopt(session) {
  current = session;
  api.setToken(session && session.token);
  localStorage.removeItem(KEY);
  sessionStorage.removeItem(KEY);
  if (session) (session.demo ? localStorage : sessionStorage).setItem(KEY, JSON.stringify(session));
}

/** Becomes demo user `userId` (throws the `ApiError` of the token call). */
export async function becomeDemoUser(userId) {
  const answer = await api.devToken(userId);
  const named = DEMO_USERS.find(([id]) => id === userId);
  adopt({ token: answer.token, userId, name: named ? named[1] : `User ${userId}`, demo: true });
  return current;
}

/** Signs in with a token from elsewhere; its `sub` only names the user on screen. */
export function useToken(token) {
  let userId = null;
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    userId = JSON.parse(atob(payload)).sub || null;
  } catch {
    userId = null;
  }
  adopt({ token, userId, name: userId ? `User ${userId}` : 'you' });
  return current;
}

export function signOut() {
  adopt(null);
}

/** One line saying who the visitor is. */
export function describe(authenticatedByGateway) {
  if (current && current.userId) return `Signed in as ${current.name} (user ${current.userId}).`;
  if (current) return 'Signed in with your token.';
  if (authenticatedByGateway) return 'Signed in by your platform.';
  return 'You are browsing anonymously.';
}
