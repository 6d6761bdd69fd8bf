// The one status line (an aria-live region): what just happened, said politely.

const region = () => document.getElementById('status');
let clearTimer = null;

/** Shows and announces `message`; `tone` is 'info' or 'problem'. */
export function announce(message, tone = 'info') {
  const el = region();
  clearTimeout(clearTimer);
  // Emptied first, so a message equal to the last one is announced again.
  el.textContent = '';
  el.dataset.tone = tone;
  requestAnimationFrame(() => {
    el.textContent = message;
  });
  clearTimer = setTimeout(() => {
    el.textContent = '';
  }, 10000);
}

/** A sentence for a person about a failed call (an `ApiError`). */
export function describe(error) {
  const wait = error.retryAfterSecs;
  const later = wait ? `in ${wait} s` : 'in a moment';
  switch (error.status) {
    case 0:
      return 'The service could not be reached. Check your connection; the page retries by itself.';
    case 401:
      return 'Your session has ended. Please sign in again.';
    case 429:
      return `Lots of activity right now. Please try again ${later}.`;
    case 503:
      return `The service is busy and did not save that. Please try again ${later}.`;
    default:
      return `That did not work (${error.message}).`;
  }
}
