// Drafts: what a learner typed on each step and side, kept in this browser
// (localStorage) so a reload, a link, a follow to another lesson or a
// closed tab loses nothing. A draft equal to the lesson's code is no draft.
// Reset (back to the lesson's code) is the explicit way to drop one.
// A learner in a class also sends them to the server (a moment after typing
// stops, and at once when the page goes away, an instructor's follow
// included): they follow the learner to another device, and the instructor
// sees them.
import { setCode } from "./editor.js";

const PREFIX = "sbs-draft:";
const SAVE_DELAY_MS = 300;
const SEND_DELAY_MS = 1500;
const pending = new Map(); // textarea -> timer of its coming save
const unsent = new Map(); // textarea -> timer of its coming send to the server
let failed = false; // the browser refused a save (private mode, quota): warn on leaving

function inClass() {
  return document.querySelector(".class-slot") !== null;
}

function draftBody(area) {
  const form = area.form;
  const body = new FormData();
  body.append("side", area.dataset.side);
  body.append("code", area.value);
  const csrf = form && form.querySelector("input[name=csrf_token]");
  if (csrf) body.append("csrf_token", csrf.value);
  return body;
}

function draftUrl(area) {
  const action = area.form ? area.form.getAttribute("action") : "";
  return action.replace(/\/pair$/, "/draft");
}

function send(area, leaving) {
  unsent.delete(area);
  const url = draftUrl(area);
  if (!url.endsWith("/draft")) return;
  if (leaving && navigator.sendBeacon) {
    navigator.sendBeacon(url, draftBody(area));
  } else {
    fetch(url, { method: "POST", body: draftBody(area), credentials: "same-origin" })
      .catch(() => { failed = true; });
  }
}

function keyFor(area) {
  // The page's path (a lesson, or an author's preview of one), the step, the side.
  return `${PREFIX}${location.pathname}:${area.closest(".step").dataset.step}:${area.dataset.side}`;
}

function save(area) {
  pending.delete(area);
  try {
    if (area.value === area.dataset.original) localStorage.removeItem(keyFor(area));
    else localStorage.setItem(keyFor(area), area.value);
    failed = false;
  } catch {
    failed = true;
  }
}

export function scheduleSave(area) {
  clearTimeout(pending.get(area));
  pending.set(area, setTimeout(() => save(area), SAVE_DELAY_MS));
  if (inClass()) {
    clearTimeout(unsent.get(area));
    unsent.set(area, setTimeout(() => send(area, false), SEND_DELAY_MS));
  }
}

export function flushDrafts() {
  for (const [area, timer] of [...pending]) {
    clearTimeout(timer);
    save(area);
  }
  for (const [area, timer] of [...unsent]) {
    clearTimeout(timer);
    send(area, true);
  }
}

// A shared link shows the code it was shared with, not this browser's drafts.
export function restoreDrafts(root, onRestored) {
  if (new URLSearchParams(location.search).has("share")) return;
  root.querySelectorAll(".step textarea.code").forEach((area) => {
    let draft = null;
    try { draft = localStorage.getItem(keyFor(area)); } catch { return; }
    if (draft === null || draft === area.value) return;
    setCode(area, draft);
    onRestored(area);
  });
}

// Leaving with edits that could not be kept: the browser asks first.
export function unsavedOnLeave(e) {
  flushDrafts();
  if (!failed) return;
  e.preventDefault();
  e.returnValue = "";
}
