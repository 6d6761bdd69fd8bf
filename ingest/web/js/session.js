// Who the visitor is: anonymous, a demo user (a dev token from POST /v1/dev/token, offered only
// by the loopback demo), or someone with a token of their own. Kept in localStorage, so a
// reload keeps the user.

import * as api from './api.js';

const KEY = 'likes.session';
export const DEMO_USERS = [
  [1, 'Ada'], [2, 'Grace'], [3, 'Linus'], [4, 'Margaret'],
  [5, 'Alan'], [6, 'Barbara'], [7, 'Ken'], [8, 'Radia'],
];

let current = null; // { token, userId, name } or null

/** The stored session, if any, made current. */
export function restore() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || 'null');
    if (saved && typeof saved.token === 'string') current = saved;
  } catch {
    current = null;
  }
  api.setToken(current && current.token);
  return current;
}

export function user() {
  return current;
}

function adopt(session) {
  current = session;
  api.setToken(session && session.token);
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
}

/** Becomes demo user `userId` (throws the `ApiError` of the token call). */
export async function becomeDemoUser(userId) {
  const answer = await api.devToken(userId);
  const named = DEMO_USERS.find(([id]) => id === userId);
  adopt({ token: answer.token, userId, name: named ? named[1] : `User ${userId}` });
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
