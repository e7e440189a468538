// Live classes in the browser: the learner's banner (follow-me, pause) and
// the instructor's sign-in from the private link. Plain script, no build:
// the pages include it only where a class is involved.
(function () {
  "use strict";

  // ---- the instructor's link: the key travels in the fragment, never to a server log
  function signInFromFragment() {
    var form = document.getElementById("teach-form");
    var match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (!form || !match) return;
    history.replaceState(null, "", location.pathname);  // off the address bar and history
    form.elements.key.value = decodeURIComponent(match[1]);
    form.submit();
  }

  // ---- the learner's banner
  var labels = new WeakMap();

  function showPause(paused) {
    document.documentElement.classList.toggle("class-paused", paused);
    document.querySelectorAll("button[data-run]").forEach(function (button) {
      if (paused && !labels.has(button)) {
        labels.set(button, button.innerHTML);
        button.textContent = "Paused";
        button.title = "Runs are paused by the instructor";
        button.disabled = true;
      } else if (!paused && labels.has(button)) {
        button.innerHTML = labels.get(button);
        labels.delete(button);
        button.removeAttribute("title");
        button.disabled = false;
      }
    });
  }

  function go(lesson, step) {
    var here = location.pathname === "/lessons/" + lesson;
    var target = here && document.getElementById("step-" + step);
    if (!target) {
      location.assign("/lessons/" + encodeURIComponent(lesson) + "#step-" + encodeURIComponent(step));
      return;
    }
    history.replaceState(null, "", "#step-" + step);
    target.scrollIntoView({ behavior: "smooth", block: "start" });
    target.classList.add("followed");
    setTimeout(function () { target.classList.remove("followed"); }, 2500);
  }

  // Taken out of the class: the note takes the place of the stream's element.
  // Swapped out through htmx, the element's stream is closed by the sse
  // extension at once (before the server's end of it could count as an
  // error) and never reopened.
  function leaveClass() {
    var note = document.querySelector(".class-slot .class-removed");
    if (!note) return;
    htmx.swap(note.closest(".class-slot"), note.outerHTML, { swapStyle: "outerHTML" });
    showPause(false);
  }

  function apply() {
    leaveClass();
    var banner = document.getElementById("class-banner");
    if (!banner) return;
    showPause(banner.dataset.paused === "true");
    // Follow-me: go when the instructor's target is newer than the last one
    // this tab saw; the first page of a tab only notes it (no jump on arrival).
    var key = "sbs-follow-" + banner.dataset.code;
    var seq = Number(banner.dataset.followSeq || 0);
    var seen = sessionStorage.getItem(key);
    sessionStorage.setItem(key, String(seq));
    if (seen !== null && seq > Number(seen) && banner.dataset.followStep) {
      go(banner.dataset.followLesson, banner.dataset.followStep);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    signInFromFragment();
    apply();
  });
  document.addEventListener("htmx:sseMessage", apply);
  // htmx re-enables a Run button when its request ends; a pause may have come meanwhile
  document.addEventListener("htmx:afterRequest", function () {
    var banner = document.getElementById("class-banner");
    if (banner && banner.dataset.paused === "true") {
      document.querySelectorAll("button[data-run]").forEach(function (b) { b.disabled = true; });
    }
  });
})();
