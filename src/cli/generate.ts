import { UserError } from "../core/errors.js";
import { generate as generateTokens } from "../models/generation.js";
import { isNonNegativeInt, isPositiveInt, parseCommandArgs, parseNumberOption, requireOption } from "./args.js";
import { modelOptions, prepareModel, printJson, quantizeFlag, reportBackend, withAdapter } from "./common.js";

function parseIds(text: string, vocabSize: number): number[] {
  const ids = text.split(",").map((s) => s.trim());
  return ids.map((s, i) => {
    const id = Number(s);
    if (s === "" || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new UserError(`--ids: item ${i + 1} "${s}" is not a token id in 0…${vocabSize - 1}`);
    }
    return id;
  });
}

/** `loralab generate --model M (--prompt TEXT | --ids 1,2,3) --max-new-tokens N [--temperature T] [--top-k K] [--top-p P] [--seed S] [--json]` */
export async function generate(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    ...modelOptions,
    model: { type: "string" },
    prompt: { type: "string" },
    ids: { type: "string" },
    "max-new-tokens": { type: "string" },
    temperature: { type: "string" },
    "top-k": { type: "string" },
    "top-p": { type: "string" },
    seed: { type: "string" },
    json: { type: "boolean" },
  });
  const modelRef = requireOption(values.model, "--model");
  if ((values.prompt === undefined) === (values.ids === undefined)) throw new UserError("give exactly one of --prompt TEXT or --ids 1,2,3");
  const maxNewTokens = parseNumberOption("--max-new-tokens", values["max-new-tokens"], 32, isPositiveInt, "a positive integer");
  const temperature = parseNumberOption("--temperature", values.temperature, 0, (n) => Number.isFinite(n) && n >= 0, "a number ≥ 0");
  const topK = parseNumberOption("--top-k", values["top-k"], 0, isNonNegativeInt, "a non-negative integer");
  const topP = parseNumberOption("--top-p", values["top-p"], 1, (n) => n > 0 && n <= 1, "a number in (0, 1]");
  const seed = parseNumberOption("--seed", values.seed, 0, Number.isInteger, "an integer");
  const loaded = await prepareModel(modelRef, values.backend, quantizeFlag(values.quantize));
  let prompt: number[];
  if (values.ids !== undefined) prompt = parseIds(values.ids, loaded.config.vocabSize);
  else {
    if (!loaded.tokenizer) throw new UserError(`${loaded.dir}: no tokenizer.json, so --prompt cannot be encoded; use --ids`);
    prompt = loaded.tokenizer.encode(values.prompt!);
  }
  const model = await withAdapter(loaded, values.adapter);
  const out = generateTokens(model, prompt, { maxNewTokens, temperature, topK, topP, seed, eosTokenIds: loaded.eosTokenIds });
  const text = loaded.tokenizer ? loaded.tokenizer.decode(out.ids) : undefined;
  reportBackend(Boolean(values.json), loaded);
  if (values.json) printJson({ ids: out.ids, text: text ?? null, stopped_by: out.stoppedBy });
  else console.log(text ?? out.ids.join(","));
  return 0;
}
