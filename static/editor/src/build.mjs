// Builds static/editor/app.js and static/editor/theme.js, and copies the
// pinned htmx, its SSE extension and Swagger UI (for /docs) into
// static/vendor/. Run: npm ci && npm run build
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
const modules = join(here, "node_modules");
copyFileSync(join(modules, "htmx.org", "dist", "htmx.min.js"), join(vendor, "htmx.min.js"));
copyFileSync(join(modules, "htmx-ext-sse", "dist", "sse.min.js"), join(vendor, "htmx-ext-sse.min.js"));
copyFileSync(join(modules, "htmx-ext-sse", "LICENSE"), join(vendor, "htmx-ext-sse.LICENSE"));
const swagger = join(vendor, "swagger-ui");
mkdirSync(swagger, { recursive: true });
for (const file of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"]) {
  copyFileSync(join(modules, "swagger-ui-dist", file), join(swagger, file));
}
console.log("copied htmx, htmx-ext-sse and swagger-ui-dist to static/vendor/");
