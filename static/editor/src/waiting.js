// A run still going: its panel says how long it has run against its limit,
// and the finished partial is pushed to the page (an event stream per job,
// `/jobs/{id}/events`) the moment the run ends, instead of being polled.
// A browser keeps only a few connections per server, so at most MAX_OPEN
// streams are open at once; the rest wait their turn. Where a stream can't
// be had (refused, dropped), the page asks `/jobs/{id}` again after a second.
/* global htmx */

const MAX_OPEN = 3;
const RETRY_MS = 1000;
const queue = [];
const watched = new WeakSet();
const started = new Map(); // job path -> when this page first saw it running
let open = 0;
let ticking = null; // the clock of the pending panels, while there are any

function targetOf(el) {
  return el.dataset.waitFor ? el.closest(el.dataset.waitFor) : el;
}

function tick() {
  const now = Date.now();
  const pending = document.querySelectorAll("[data-wait]");
  if (!pending.length) { clearInterval(ticking); ticking = null; return; }
  pending.forEach((el) => {
    const since = started.get(el.dataset.wait);
    const label = el.querySelector(".elapsed");
    if (since === undefined || !label) return;
    const seconds = Math.floor((now - since) / 1000);
    label.textContent = `${seconds} s of ${el.dataset.limitS} s`;
  });
}

function pump() {
  while (open < MAX_OPEN && queue.length) {
    const el = queue.shift();
    if (document.body.contains(el)) listen(el);
  }
}

function listen(el) {
  open += 1;
  const source = new EventSource(`${el.dataset.wait}/events`);
  let closed = false;
  const close = () => {
    if (closed) return false;
    closed = true;
    source.close();
    open -= 1;
    pump();
    return true;
  };
  source.addEventListener("done", (e) => {
    if (!close()) return;
    const target = targetOf(el);
    if (target && document.body.contains(target)) {
      htmx.swap(target, e.data, { swapStyle: "outerHTML" });
    }
  });
  source.onerror = () => {
    if (!close()) return;
    setTimeout(() => {
      const target = targetOf(el);
      if (target && document.body.contains(el)) {
        htmx.ajax("GET", el.dataset.wait, { target, swap: "outerHTML" });
      }
    }, RETRY_MS);
  };
}

export function watchRuns(root) {
  const found = root.matches && root.matches("[data-wait]") ? [root] : [];
  found.push(...root.querySelectorAll("[data-wait]"));
  for (const el of found) {
    if (watched.has(el)) continue;
    watched.add(el);
    if (!started.has(el.dataset.wait)) started.set(el.dataset.wait, Date.now());
    queue.push(el);
  }
  if (found.length && ticking === null) ticking = setInterval(tick, 1000);
  tick();
  pump();
}
