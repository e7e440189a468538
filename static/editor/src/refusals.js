// Every request the server refuses, or that gets no answer, is said in the
// panel it was for, in plain words; the learner's code stays as it is.

const SIDES = ["tensorflow", "pytorch"];

function plainWords(status, detail, retryAfter) {
  const said = detail ? ` (${detail})` : "";
  switch (status) {
    case 0: return "No answer from the server: check your connection, then run it again.";
    case 404: return `The server doesn't know this any more${said}: reload the page.`;
    case 413: return `Your code is too large to send${said}. Make it shorter and run it again.`;
    case 422: return `The server can't run this code${said}.`;
    case 423: return `This can't run right now${said}.`;
    case 429: return `Too many runs are waiting${said}. Try again in ${retryAfter || "a few"} s.`;
    case 403: return `The server refused this request${said}. Reload the page and try again.`;
    default:
      if (status >= 500) return `The server failed on this request (${status}). Your code is kept: try again in a moment.`;
      return `The server refused this request (${status})${said}.`;
  }
}

function detailOf(xhr) {
  if (!xhr) return "";
  try {
    const body = JSON.parse(xhr.responseText);
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail[0] && body.detail[0].msg) return body.detail[0].msg;
  } catch { /* not JSON */ }
  return "";
}

function note(message) {
  const box = document.createElement("div");
  box.className = "refusal";
  box.setAttribute("role", "alert");
  const strong = document.createElement("strong");
  strong.textContent = "Not run. ";
  box.append(strong, document.createTextNode(message));
  return box;
}

function refuseResult(panel, message) {
  if (!panel) return;
  panel.removeAttribute("hx-get");
  panel.removeAttribute("hx-trigger");
  panel.dataset.state = "refused";
  panel.className = panel.className.replace(/\bstate-\S+/g, "").trim() + " state-refused";
  panel.classList.remove("is-stale");
  const badge = panel.querySelector(".result-head .badge");
  if (badge) { badge.className = "badge bad"; badge.textContent = "not run"; }
  panel.querySelectorAll(".result-head .muted").forEach((m) => m.remove());
  const body = panel.querySelector(".result-body");
  if (body) body.replaceChildren(note(message));
}

function refuseVerdict(verdict, message) {
  if (!verdict) return;
  verdict.removeAttribute("hx-get");
  verdict.removeAttribute("hx-trigger");
  verdict.classList.remove("match", "mismatch", "is-stale", "state-pending", "state-done");
  verdict.classList.add("state-refused");
  verdict.querySelectorAll(".table-scroll, .timing-both, .verdict-line").forEach((el) => el.remove());
  const line = document.createElement("p");
  line.className = "verdict-line refused";
  line.setAttribute("role", "alert");
  line.textContent = `Not compared. ${message}`;
  verdict.prepend(line);
}

function refuseCheck(exercise, message) {
  if (!exercise) return;
  exercise.querySelectorAll(".check-line").forEach((el) => el.remove());
  const line = document.createElement("p");
  line.className = "check-line bad";
  line.setAttribute("role", "alert");
  line.textContent = `Not checked. ${message}`;
  exercise.querySelector("input[name=hints_shown]").after(line);
}

// What a request was for, from its path: which panels its refusal goes in.
export function showRefusal(e) {
  const detail = e.detail;
  const xhr = detail.xhr;
  const status = e.type === "htmx:responseError" && xhr ? xhr.status : 0;
  const message = plainWords(status, detailOf(xhr),
    xhr && xhr.getResponseHeader ? xhr.getResponseHeader("Retry-After") : null);
  const path = (detail.pathInfo && detail.pathInfo.requestPath) || "";
  const elt = detail.elt;
  const step = elt && elt.closest ? elt.closest(".step") : null;
  const id = step && step.dataset.step;
  const run = path.match(/\/run\/(tensorflow|pytorch)$/);
  if (run && id) {
    refuseResult(document.getElementById(`result-${id}-${run[1]}`), message);
  } else if (/\/(pair|time)$/.test(path) && id) {
    SIDES.forEach((s) => refuseResult(document.getElementById(`result-${id}-${s}`), message));
    refuseVerdict(document.getElementById(`verdict-${id}`), message);
  } else if (/\/check$/.test(path) && id) {
    refuseCheck(document.getElementById(`exercise-${id}`), message);
  } else if (path.startsWith("/jobs/") && elt) {
    if (elt.classList.contains("result")) refuseResult(elt, message);
    else if (elt.classList.contains("verdict")) {
      SIDES.forEach((s) => refuseResult(document.getElementById(`result-${id}-${s}`), message));
      refuseVerdict(elt, message);
    } else refuseCheck(elt.closest(".exercise"), message);
  } else if (step) {
    const actions = step.querySelector(".pair-actions");
    if (actions) {
      actions.querySelectorAll(".refusal").forEach((r) => r.remove());
      const box = note(message);
      box.firstChild.textContent = "Not done. ";
      actions.append(box);
    }
  }
}
