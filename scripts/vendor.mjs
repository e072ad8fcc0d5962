// Copies the pinned htmx builds from node_modules into progress_ui/static/progress_ui/vendor,
// with the version in each file name. Run with `npm ci && npm run vendor`.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "progress_ui", "static", "progress_ui", "vendor");

// [package folder in node_modules, file inside it, output name prefix]
const files = [
  ["htmx.org", "dist/htmx.min.js", "htmx"],
  // The 2.x SSE extension lives in its own package; htmx.org/dist/ext/sse.js is the 1.x one.
  ["htmx-ext-sse", "dist/sse.js", "htmx-ext-sse"],
  ["htmx4", "dist/htmx.min.js", "htmx"],
  ["htmx4", "dist/ext/hx-sse.js", "htmx-hx-sse"],
];

const version = (pkg) =>
  JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")).version;

mkdirSync(out, { recursive: true });
for (const name of readdirSync(out)) {
  if (name.endsWith(".js")) rmSync(join(out, name));
}
for (const [pkg, file, prefix] of files) {
  const v = version(pkg);
  const ext = file.endsWith(".min.js") ? ".min.js" : ".js";
  const target = `${prefix}-${v}${ext}`;
  copyFileSync(join(root, "node_modules", pkg, file), join(out, target));
  console.log(`${pkg}/${file} -> progress_ui/static/progress_ui/vendor/${target}`);
}
