// Zoom and pan for graph drawings: wheel or +/- buttons zoom, dragging or
// arrow keys pan, 0 resets. The drawing is an <img>, so it cannot run script.
const state = new WeakMap();

function apply(view) {
  const s = state.get(view);
  view.querySelector("img").style.transform = `translate(${s.x}px, ${s.y}px) scale(${s.k})`;
}

function zoom(view, factor) {
  const s = state.get(view);
  s.k = Math.min(8, Math.max(0.25, s.k * factor));
  apply(view);
}

function setup(view) {
  if (state.has(view)) return;
  state.set(view, { k: 1, x: 0, y: 0 });
  view.addEventListener("wheel", (e) => {
    if (!e.ctrlKey && !e.metaKey && !view.matches(":focus-within")) return;
    e.preventDefault();
    zoom(view, e.deltaY < 0 ? 1.15 : 1 / 1.15);
  }, { passive: false });
  let drag = null;
  view.addEventListener("pointerdown", (e) => {
    if (e.target.closest("button")) return;
    const s = state.get(view);
    drag = { x: e.clientX - s.x, y: e.clientY - s.y };
    view.setPointerCapture(e.pointerId);
    view.classList.add("dragging");
  });
  view.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const s = state.get(view);
    s.x = e.clientX - drag.x;
    s.y = e.clientY - drag.y;
    apply(view);
  });
  const stop = () => { drag = null; view.classList.remove("dragging"); };
  view.addEventListener("pointerup", stop);
  view.addEventListener("pointercancel", stop);
  view.addEventListener("keydown", (e) => {
    const s = state.get(view);
    const step = 40;
    const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (e.key === "+" || e.key === "=") zoom(view, 1.25);
    else if (e.key === "-") zoom(view, 0.8);
    else if (e.key === "0") { Object.assign(s, { k: 1, x: 0, y: 0 }); apply(view); }
    else if (moves[e.key]) { s.x += moves[e.key][0]; s.y += moves[e.key][1]; apply(view); }
    else return;
    e.preventDefault();
  });
  view.parentElement.querySelectorAll("[data-zoom]").forEach((b) => {
    b.addEventListener("click", () => {
      const s = state.get(view);
      const z = b.dataset.zoom;
      if (z === "reset") { Object.assign(s, { k: 1, x: 0, y: 0 }); apply(view); }
      else zoom(view, z === "in" ? 1.25 : 0.8);
    });
  });
}

export function initGraphs(root) {
  root.querySelectorAll(".graph-view").forEach(setup);
}
