// Page behaviour for the lesson pages. Everything the server can do is done
// there (results, diffs, hints arrive as HTML partials through htmx); this
// file only does what needs the browser: editors, theme, tabs, zoom.
import { mountEditor, setCode, markErrorLine, focusLine } from "./editor.js";
import { initGraphs } from "./graph.js";
import { scheduleSave, flushDrafts, restoreDrafts, unsavedOnLeave } from "./drafts.js";
import { showRefusal } from "./refusals.js";
import { watchRuns } from "./waiting.js";

function codeArea(step, side) {
  return document.getElementById(`code-${step}-${side}`);
}

function initEditors(root) {
  root.querySelectorAll("textarea.code").forEach(mountEditor);
}

// A result partial (or an exercise's checked run) carries data-error-line when
// its snippet raised.
function markErrors(root) {
  const results = root.matches && root.matches(".result, .exercise-run") ? [root] : [];
  results.push(...root.querySelectorAll(".result, .exercise-run"));
  for (const r of results) {
    const area = codeArea(r.dataset.step, r.dataset.side);
    if (!area) continue;
    const line = r.dataset.errorLine ? Number(r.dataset.errorLine) : null;
    if (r.dataset.state !== "pending") markErrorLine(area, line);
  }
}

function initTheme() {
  const button = document.getElementById("theme-toggle");
  if (!button) return;
  const sync = () => {
    const dark = document.documentElement.dataset.theme === "dark";
    button.setAttribute("aria-pressed", String(dark));
    button.querySelector(".theme-label").textContent = dark ? "Light mode" : "Dark mode";
  };
  sync();
  button.addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem("sbs-theme", next); } catch { /* private mode */ }
    sync();
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", (e) => {
    let saved = null;
    try { saved = localStorage.getItem("sbs-theme"); } catch { /* ignore */ }
    if (!saved) { document.documentElement.dataset.theme = e.matches ? "dark" : "light"; sync(); }
  });
}

// Tabs switch what both result panels of a step show (output, graph, timing).
function selectTab(tab, focus) {
  const list = tab.closest("[role=tablist]");
  const step = tab.closest(".step");
  list.querySelectorAll("[role=tab]").forEach((t) => {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
  });
  step.dataset.tab = tab.dataset.tab;
  if (focus) tab.focus();
}

function onTabKey(e) {
  const tab = e.target.closest("[role=tab]");
  if (!tab) return;
  const tabs = [...tab.closest("[role=tablist]").querySelectorAll("[role=tab]")];
  const i = tabs.indexOf(tab);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
  if (next === undefined) return;
  e.preventDefault();
  selectTab(tabs[(next + tabs.length) % tabs.length], true);
}

function onClick(e) {
  const tab = e.target.closest("[role=tab]");
  if (tab) { selectTab(tab, false); return; }
  const timing = e.target.closest(".timing-button");
  if (timing) { // its times land in the Timing tab: show it
    const own = timing.closest(".step").querySelector("[role=tab][data-tab=timing]");
    if (own) selectTab(own, false);
    return;
  }
  const action = e.target.closest("[data-action]");
  if (!action) return;
  const step = action.closest(".step");
  const id = step && step.dataset.step;
  switch (action.dataset.action) {
    case "reset":
      step.querySelectorAll("textarea.code").forEach((a) => {
        setCode(a, a.dataset.original);
        markErrorLine(a, null);
      });
      break;
    case "use-solution": {
      const area = codeArea(id, action.dataset.side);
      const src = document.getElementById(action.dataset.source);
      if (area && src) { setCode(area, src.textContent); focusLine(area, 1); }
      break;
    }
    case "goto-line": {
      const area = codeArea(id, action.dataset.side);
      if (area) focusLine(area, Number(action.dataset.line));
      break;
    }
    case "copy": {
      const input = document.getElementById(action.dataset.target);
      if (input && navigator.clipboard) {
        navigator.clipboard.writeText(input.value).then(() => { action.textContent = "Copied"; });
      } else if (input) { input.select(); }
      break;
    }
  }
}

// The diff button toggles: a second press closes the panel without a request.
function onConfirm(e) {
  const button = e.detail.elt;
  if (!button.matches || !button.matches("[data-diff]")) return;
  const panel = document.getElementById(button.getAttribute("aria-controls"));
  if (button.getAttribute("aria-expanded") === "true" && !e.detail.triggeringEvent?.sbsRefresh) {
    e.preventDefault();
    button.setAttribute("aria-expanded", "false");
    panel.replaceChildren();
    panel.hidden = true;
  }
}

// A pending panel keeps the height of the result it replaces, so the page
// does not jump while a run is queued or running.
const heights = new Map();
function onBeforeSwap(e) {
  const target = e.detail.target;
  if (target && target.id) heights.set(target.id, target.offsetHeight);
}

function holdHeight(el) {
  if (!el || !el.id || !heights.has(el.id)) return;
  if (el.dataset.state === "pending") el.style.minHeight = `${heights.get(el.id)}px`;
  heights.delete(el.id);
}

function onAfterSwap(e) {
  const target = e.detail.target;
  holdHeight(target && target.id ? document.getElementById(target.id) : null);
  if (target && target.classList && target.classList.contains("diff")) {
    target.hidden = false;
    const button = document.querySelector(`[aria-controls="${target.id}"]`);
    if (button) button.setAttribute("aria-expanded", "true");
  }
}

// A result computed from other code than the editor's says so.
function markStale(area) {
  const step = area.closest(".step");
  const panel = document.getElementById(`result-${step.dataset.step}-${area.dataset.side}`);
  if (panel && panel.dataset.state === "done") panel.classList.add("is-stale");
  const verdict = area.dataset.side !== "exercise" && step.querySelector(".verdict.state-done");
  if (verdict) verdict.classList.add("is-stale");
}

// Every edit is kept as a draft and makes older results stale; while the
// diff is open, edits refresh it (debounced).
const refreshTimers = new WeakMap();
function onEdit(e) {
  const step = e.target.closest(".step");
  if (!step) return;
  if (e.target.matches("textarea.code")) {
    scheduleSave(e.target);
    markStale(e.target);
  }
  const button = step && step.querySelector("[data-diff][aria-expanded=true]");
  if (!button) return;
  clearTimeout(refreshTimers.get(button));
  refreshTimers.set(button, setTimeout(() => {
    const ev = new Event("refresh");
    ev.sbsRefresh = true;
    button.dispatchEvent(ev);
  }, 400));
}

function init(root) {
  initEditors(root);
  markErrors(root);
  initGraphs(root);
  watchRuns(root);
}

document.addEventListener("DOMContentLoaded", () => {
  initTheme();
  document.addEventListener("click", onClick);
  document.addEventListener("keydown", onTabKey);
  document.addEventListener("sbs:edit", onEdit);
  document.body.addEventListener("htmx:confirm", onConfirm);
  document.body.addEventListener("htmx:beforeSwap", onBeforeSwap);
  document.body.addEventListener("htmx:afterSwap", onAfterSwap);
  document.body.addEventListener("htmx:oobBeforeSwap", (e) => {
    const t = e.detail.target;
    if (t && t.id) heights.set(t.id, t.offsetHeight);
  });
  document.body.addEventListener("htmx:oobAfterSwap", (e) => {
    const t = e.detail.target;
    holdHeight(t && t.id ? document.getElementById(t.id) : null);
  });
  document.body.addEventListener("htmx:responseError", showRefusal);
  document.body.addEventListener("htmx:sendError", showRefusal);
  document.body.addEventListener("htmx:timeout", showRefusal);
  window.addEventListener("beforeunload", unsavedOnLeave);
  window.addEventListener("pagehide", flushDrafts);
  document.body.addEventListener("htmx:load", (e) => init(e.detail.elt));
  init(document);
  restoreDrafts(document, markStale);
  // A shared link's step runs as it opens: its output is the one that was shared.
  const shared = document.querySelector(".step[data-autorun] button[data-run=both]");
  if (shared) shared.click();
});
