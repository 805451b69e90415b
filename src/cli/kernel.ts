import { oneOf, validate } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { parseCommandArgs, requireOption } from "./args.js";

const usage = `usage:
  loralab kernel install [--user | --sys-prefix | --prefix DIR] [--name loralab] [--display-name NAME]
                         [--interrupt-mode message|signal]
  loralab kernel start -f CONNECTION_FILE      (what the kernelspec runs; Jupyter starts it)`;

/** `loralab kernel install|start`: the Jupyter kernel (see kernel/README.md). */
export async function kernel(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "install") return install(rest);
  if (sub === "start") return start(rest);
  if (sub === undefined || sub === "--help" || sub === "-h") {
    console.log(usage);
    return sub === undefined ? 2 : 0;
  }
  throw new UserError(`unknown subcommand "${sub}"\n${usage}`);
}

async function install(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    user: { type: "boolean" },
    "sys-prefix": { type: "boolean" },
    prefix: { type: "string" },
    name: { type: "string" },
    "display-name": { type: "string" },
    "interrupt-mode": { type: "string" },
  });
  if (positionals.length > 0) throw new UserError(`unexpected argument "${positionals[0]}"`);
  const given = values["interrupt-mode"];
  const mode = given === undefined ? undefined : validate(given, oneOf("message", "signal"), "", "--interrupt-mode");
  const { installKernelSpec } = await import("../../kernel/install.js");
  const dir = installKernelSpec({
    user: values.user,
    sysPrefix: values["sys-prefix"],
    prefix: values.prefix,
    name: values.name,
    displayName: values["display-name"],
    interruptMode: mode,
  });
  console.log(`installed the loralab kernelspec in ${dir}`);
  return 0;
}

async function start(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { "connection-file": { type: "string", short: "f" } });
  const file = requireOption(values["connection-file"] ?? positionals[0], "-f CONNECTION_FILE");
  const { runKernel } = await import("../../kernel/main.js");
  return runKernel(file);
}
