/**
 * The browser builds of vega, vega-lite and vega-embed, read from the installed packages, for inlining into an
 * exported page: the page draws its charts with no network (and the versions are the ones loralab renders its
 * PNGs with).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Package → its UMD build (which defines the global that the next one needs: vega, then vegaLite, then vegaEmbed). */
const BUILDS: [name: string, file: string][] = [
  ["vega", "build/vega.min.js"],
  ["vega-lite", "build/vega-lite.min.js"],
  ["vega-embed", "build/vega-embed.min.js"],
];

/** The folder of an installed package (its entry may sit anywhere below; "exports" hides package.json itself). */
function packageDir(name: string): string {
  const entry = fileURLToPath(import.meta.resolve(name));
  for (let dir = dirname(entry); dirname(dir) !== dir; dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === name) return dir;
  }
  throw new Error(`cannot find the folder of package ${name} (from ${entry})`);
}

/** The three scripts, in load order, safe to place inside <script> elements. */
export function vegaScripts(): { name: string; version: string; code: string }[] {
  return BUILDS.map(([name, file]) => {
    const dir = packageDir(name);
    const version = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
    // "</script" would end the element early; "<\/script" means the same inside the strings and regexes it can occur in.
    const code = readFileSync(join(dir, file), "utf8").replace(/<\/(script)/gi, "<\\/$1");
    return { name, version, code };
  });
}
