// Drafts: what a learner typed on each step and side, kept in this browser
// (localStorage) so a reload, a link, a follow to another lesson or a
// closed tab loses nothing. A draft equal to the lesson's code is no draft.
// Reset (back to the lesson's code) is the explicit way to drop one.
import { setCode } from "./editor.js";

const PREFIX = "sbs-draft:";
const SAVE_DELAY_MS = 300;
const pending = new Map(); // textarea -> timer of its coming save
let failed = false; // the browser refused a save (private mode, quota): warn on leaving

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
}

export function flushDrafts() {
  for (const [area, timer] of [...pending]) {
    clearTimeout(timer);
    save(area);
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
