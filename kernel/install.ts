/**
 * Writes the loralab kernelspec where Jupyter looks for kernels, without Python:
 *   --user (default)  the user's Jupyter data dir (JUPYTER_DATA_DIR, else $XDG_DATA_HOME/jupyter or
 *                     ~/.local/share/jupyter; ~/Library/Jupyter on macOS; %APPDATA%\jupyter on Windows)
 *   --sys-prefix      the active virtualenv/conda env (VIRTUAL_ENV, CONDA_PREFIX; else python3's sys.prefix)
 *   --prefix P        P/share/jupyter/kernels
 * The spec runs this very Node.js and loralab by absolute path: `node …/bin/loralab.js kernel start -f {connection_file}`.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { UserError } from "../src/core/errors.js";
import { logoPng, logoSvg } from "./logo.js";
import { packageRoot, packageVersion } from "../src/core/package.js";

export interface InstallOptions {
  user?: boolean;
  sysPrefix?: boolean;
  prefix?: string;
  name?: string;
  displayName?: string;
  interruptMode?: "message" | "signal";
}

export interface KernelSpec {
  argv: string[];
  display_name: string;
  language: string;
  interrupt_mode: "message" | "signal";
  env: Record<string, string>;
  metadata: Record<string, unknown>;
}

export function userDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.JUPYTER_DATA_DIR) return env.JUPYTER_DATA_DIR;
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Jupyter");
  if (process.platform === "win32") return path.join(env.APPDATA ?? path.join(os.homedir(), "AppData", "Roaming"), "jupyter");
  return path.join(env.XDG_DATA_HOME || path.join(os.homedir(), ".local", "share"), "jupyter");
}

function sysPrefix(env: NodeJS.ProcessEnv = process.env): string {
  const active = env.VIRTUAL_ENV ?? env.CONDA_PREFIX;
  if (active) return active;
  const python = spawnSync("python3", ["-c", "import sys; print(sys.prefix)"], { encoding: "utf8" });
  if (python.status === 0 && python.stdout.trim()) return python.stdout.trim();
  throw new UserError(
    "--sys-prefix needs an active virtualenv or conda env (VIRTUAL_ENV / CONDA_PREFIX) or python3 on PATH; use --prefix DIR instead",
  );
}

/** The kernels folder the options select. */
export function kernelsDir(options: InstallOptions): string {
  const chosen = [options.user, options.sysPrefix, options.prefix !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new UserError("choose one of --user, --sys-prefix and --prefix");
  if (options.prefix !== undefined) return path.join(path.resolve(options.prefix), "share", "jupyter", "kernels");
  if (options.sysPrefix) return path.join(sysPrefix(), "share", "jupyter", "kernels");
  return path.join(userDataDir(), "kernels");
}

export function kernelSpec(options: InstallOptions, version: string): KernelSpec {
  return {
    argv: [process.execPath, path.join(packageRoot(), "bin", "loralab.js"), "kernel", "start", "-f", "{connection_file}"],
    display_name: options.displayName ?? "TypeScript (loralab)",
    language: "typescript",
    interrupt_mode: options.interruptMode ?? "message",
    env: {},
    metadata: { loralab: { version }, debugger: false },
  };
}

/** Writes kernel.json and the logos; returns the kernel's folder. */
export function installKernelSpec(options: InstallOptions): string {
  const name = options.name ?? "loralab";
  if (!/^[A-Za-z0-9._-]+$/.test(name))
    throw new UserError(`--name: a kernel name may hold only letters, digits, ".", "_" and "-", got "${name}"`);
  const version = packageVersion();
  const dir = path.join(kernelsDir(options), name);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "kernel.json"), `${JSON.stringify(kernelSpec(options, version), null, 2)}\n`);
    fs.writeFileSync(path.join(dir, "logo-32x32.png"), logoPng(32));
    fs.writeFileSync(path.join(dir, "logo-64x64.png"), logoPng(64));
    fs.writeFileSync(path.join(dir, "logo-svg.svg"), logoSvg());
  } catch (e) {
    throw new UserError(`${dir}: cannot write the kernelspec: ${(e as Error).message}`);
  }
  return dir;
}
