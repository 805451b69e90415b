import { loadAdapter } from "../lora/adapter-io.js";
import { saveModelDirectory } from "../models/save.js";
import { parseCommandArgs, requireOption } from "./args.js";
import { backendOption, prepareModel, reportBackend } from "./common.js";

/** `loralab merge --model DIR --adapter DIR --out DIR`: fold the adapter into the weights, write a plain HF checkpoint. */
export async function merge(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    ...backendOption,
    model: { type: "string" },
    adapter: { type: "string" },
    out: { type: "string" },
  });
  const modelRef = requireOption(values.model, "--model");
  const adapterDir = requireOption(values.adapter, "--adapter");
  const out = requireOption(values.out, "--out");
  const loaded = await prepareModel(modelRef, values.backend);
  const merged = (await loadAdapter(loaded.model, adapterDir)).mergeAndUnload();
  await saveModelDirectory(merged, loaded.dir, out);
  reportBackend();
  console.log(`merged ${adapterDir} into ${loaded.dir} → ${out}`);
  return 0;
}
