/** `npm run reference`: recompute test/fixtures/reference-outputs.json with the PyTorch reference. */
import { buildReferenceCases } from "../helpers/reference-cases.js";
import { FIXTURE, writeFixture } from "../helpers/reference.js";
import { tempDir } from "../helpers/paths.js";

const dir = tempDir("reference");
writeFixture(await buildReferenceCases(dir), dir);
console.log(`wrote ${FIXTURE}`);
