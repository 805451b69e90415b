/**
 * Debian's Chromium driven by playwright-core, for pages loralab writes: a fresh profile per page, and every
 * console error or warning, page error, failed request and non-local request recorded.
 */
import * as fs from "node:fs";
import type { TestContext } from "node:test";
import { chromium, type Page } from "playwright-core";
import { tempDir } from "./paths.js";

export const CHROMIUM = "/usr/bin/chromium";
export const chromiumMissing = fs.existsSync(CHROMIUM) ? false : "needs Debian's chromium (apt-get install chromium; CI installs it)";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Opens `file` in a fresh Chromium; `problems` collects what a clean page must not produce. */
export async function openPage(t: TestContext, file: string, { javaScript = true } = {}): Promise<{ page: Page; problems: string[] }> {
  const profile = tempDir("chromium");
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    javaScriptEnabled: javaScript,
  });
  t.after(async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`failed request: ${r.url()} (${r.failure()?.errorText})`));
  page.on("request", (r) => {
    if (!r.url().startsWith("file://") && !r.url().startsWith("data:")) problems.push(`network request: ${r.url()}`);
  });
  await page.goto(`file://${file}`, { waitUntil: "load" });
  return { page, problems };
}
