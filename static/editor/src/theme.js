// Loaded blocking in <head> so the first paint already has the right theme.
const saved = (() => {
  try { return localStorage.getItem("sbs-theme"); } catch { return null; }
})();
const dark = saved ? saved === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
document.documentElement.dataset.theme = dark ? "dark" : "light";
