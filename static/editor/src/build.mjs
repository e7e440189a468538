// Builds static/editor/app.js and static/editor/theme.js, and copies the
// pinned htmx into static/vendor/. Run: npm ci && npm run build
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..");
const vendor = join(here, "..", "..", "vendor");

await build({
  entryPoints: { app: join(here, "main.js"), theme: join(here, "theme.js") },
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "eof",
  charset: "utf8",
  logLevel: "info",
});

mkdirSync(vendor, { recursive: true });
copyFileSync(join(here, "node_modules", "htmx.org", "dist", "htmx.min.js"), join(vendor, "htmx.min.js"));
console.log("copied htmx.min.js to static/vendor/");
