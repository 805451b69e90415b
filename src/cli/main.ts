import { isUserError } from "../core/errors.js";

/** A CLI subcommand: resolves to the process exit code. */
export type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  info: async () => (await import("./info.js")).info,
  eval: async () => (await import("./eval.js")).evalCommand,
  generate: async () => (await import("./generate.js")).generate,
  kernel: async () => (await import("./kernel.js")).kernel,
  train: async () => (await import("./train.js")).train,
  merge: async () => (await import("./merge.js")).merge,
  bleu: async () => (await import("./bleu.js")).bleu,
  bench: async () => (await import("./bench.js")).bench,
  quickstart: async () => (await import("./quickstart.js")).quickstart,
  export: async () => (await import("./export.js")).exportCommand,
  run: async () => (await import("./run.js")).runCommand,
  sweep: async () => (await import("./sweep.js")).sweepCommand,
  worker: async () => (await import("./worker.js")).worker,
};

const usage = `usage: loralab <command> [options]

commands:
  info                         backend, versions, threads, memory
  eval --model M --data F      perplexity of a model on a JSONL file
  generate --model M --prompt  generate text (greedy or sampled)
  train --model M --data F      LoRA or full fine-tuning
  merge --model M --adapter A --out D   fold an adapter into the weights
  sweep --model M --data F --grid r=1,2,4   a LoRA sweep (seeds, statistics; --parallel N or --queue URL)
  worker --queue URL           train the trials sweeps submit to a Redis queue
  bleu --ref R < HYP           sacrebleu-compatible BLEU / chrF
  kernel install|start         the Jupyter kernel (install a kernelspec; what Jupyter runs)
  bench [--config small --mode lora|full|qlora|matmul]   training steps, matmul ceiling, forward pass per backend
  quickstart                   a tour on the shipped model
  export NB.ipynb --to ts|html a notebook as a TypeScript module or a standalone page
  run NB.ipynb [-p k=v] [-o OUT.ipynb] [--timeout S] [--html OUT.html]   execute a notebook on the loralab kernel

common options: --backend wasm|cpu|tensorflow|tensorflow-gpu (or LORALAB_BACKEND)`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage);
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (!load) {
    console.error(`loralab: unknown command "${name}"\n${usage}`);
    return 2;
  }
  try {
    return await (
      await load()
    )(rest);
  } catch (e) {
    if (isUserError(e)) {
      console.error(`loralab ${name}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
