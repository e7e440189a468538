// Live classes in the browser: the learner's banner (follow-me, pause), the
// instructor's sign-in from the private link, their dashboard (a learner's
// code, the step map, the end of the class) and the form that starts a class. Plain script, no build:
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

  // ---- the instructor's dashboard

  // After "End class", what no longer applies goes at once: follow me, the
  // message box, the Remove buttons (the server renders them so on reload).
  function dropWhatEnded() {
    var status = document.getElementById("class-status");
    if (!status || status.dataset.ended !== "true") return;
    document.querySelectorAll("[data-while-open]").forEach(function (el) { el.remove(); });
  }

  // A learner's code opens in a dialog; while it is open the panel fetches
  // itself again on each roster update. Closed, it goes back to the empty
  // panel, which follows nothing.
  var askedForCode = false;
  var emptyCode = null;

  function codeDialog() { return document.getElementById("learner-dialog"); }

  function showCode(panel) {
    var dialog = codeDialog();
    if (!dialog || !dialog.contains(panel)) return;
    if (askedForCode && !dialog.open) dialog.showModal();
    askedForCode = false;
    if (!dialog.open) closeCode();
  }

  function closeCode() {
    var panel = document.getElementById("learner-code");
    if (panel && emptyCode) panel.replaceWith(emptyCode.cloneNode(true));
  }

  // The step map: a lesson the instructor opened or closed stays so when the
  // map is drawn again.
  var mapChoices = {};

  function keepMapChoices() {
    document.querySelectorAll("#step-map details[data-lesson]").forEach(function (d) {
      var chosen = mapChoices[d.dataset.lesson];
      if (chosen !== undefined) d.open = chosen;
    });
  }

  // ---- starting a class: only the chosen pack's lessons (of the picked version) count
  function showPackLessons(form) {
    var picked = form.querySelector("input[name=pack]:checked");
    form.querySelectorAll(".pack-choice").forEach(function (choice) {
      var chosen = picked && picked.value === choice.dataset.pack;
      choice.classList.toggle("chosen", !!chosen);
      var select = choice.querySelector("select");
      var note = choice.querySelector(".version-note");
      if (select && note) note.textContent = "(version " + select.value + ")";
      choice.querySelectorAll("fieldset.pack-lessons").forEach(function (lessons) {
        var shown = !select || lessons.dataset.version === select.value;
        lessons.hidden = !shown;
        lessons.disabled = !(chosen && shown);
      });
    });
  }

  function startClassForm() {
    var form = document.getElementById("new-class-form");
    if (!form) return;
    form.addEventListener("change", function (event) {
      var select = event.target.closest("select[data-pack]");
      if (select) {  // picking a version picks its pack
        var radio = select.closest(".pack-choice").querySelector("input[name=pack]");
        if (radio) radio.checked = true;
      }
      showPackLessons(form);
    });
    showPackLessons(form);
  }

  document.addEventListener("DOMContentLoaded", function () {
    signInFromFragment();
    apply();
    dropWhatEnded();
    startClassForm();
    var panel = document.getElementById("learner-code");
    if (panel && codeDialog()) {
      emptyCode = panel.cloneNode(true);
      codeDialog().addEventListener("close", closeCode);
    }
    var map = document.getElementById("step-map");
    if (map) {
      map.parentElement.addEventListener("toggle", function (event) {
        var d = event.target;
        if (d.dataset && d.dataset.lesson) mapChoices[d.dataset.lesson] = d.open;
      }, true);
    }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.closest && event.detail.elt.closest("#roster")) askedForCode = true;
  });
  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    if (elt.id === "learner-code") showCode(elt);
    if (elt.id === "step-map") keepMapChoices();
    dropWhatEnded();
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
