/** Reference streams, laid out as sacrebleu takes them, and the signature that records how they were scored. */

/**
 * `streams[k][i]` is the k-th reference of segment i (one stream per reference file).
 * `null`/`undefined` means segment i has no k-th reference, which makes the count variable
 * (`nrefs:var`); an empty string is a real, empty reference, as in sacrebleu.
 */
export type ReferenceStreams = readonly (readonly (string | null | undefined)[])[];

/** A segment's references, for the sentence-level functions. */
export type SegmentReferences = readonly (string | null | undefined)[];

/** The number sacrebleu puts in `nrefs:`, "var" when segments have different counts. */
export type RefCount = number | "var";

/** The release of sacrebleu whose scores, result strings and signatures this code reproduces. */
export const SACREBLEU_VERSION = "2.6.0";

/** Transposes streams into per-segment reference lists, dropping the missing ones. */
export function referencesBySegment(streams: ReferenceStreams, segments: number): { refs: string[][]; nrefs: RefCount } {
  if (streams.length === 0) throw new Error("no reference streams given");
  streams.forEach((stream, k) => {
    if (stream.length !== segments) {
      throw new Error(`reference stream ${k + 1} has ${stream.length} segments, hypotheses have ${segments}`);
    }
  });
  const counts = new Set<number>();
  const refs: string[][] = [];
  for (let i = 0; i < segments; i++) {
    const present: string[] = [];
    for (const stream of streams) {
      const ref = stream[i];
      if (ref !== null && ref !== undefined) present.push(ref);
    }
    // sacrebleu fails obscurely here; say what is wrong instead.
    if (present.length === 0) throw new Error(`segment ${i + 1} has no reference`);
    counts.add(present.length);
    refs.push(present);
  }
  const nrefs: RefCount = counts.size === 1 ? [...counts][0]! : "var";
  return { refs, nrefs };
}

/** sacrebleu's `key:value|…|version:X` signature (its long form), version always last. */
export function formatSignature(nrefs: RefCount, fields: readonly [string, string | number][]): string {
  return [["nrefs", nrefs] as const, ...fields, ["version", SACREBLEU_VERSION] as const].map(([key, value]) => `${key}:${value}`).join("|");
}
