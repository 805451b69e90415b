/**
 * Renders vega-lite v5 chart specs (the plain objects that `lossChart` and `SweepResult.metricChart`
 * return) to SVG and PNG in-process, without a browser: vega-lite compiles the spec to vega, a
 * headless vega View (renderer "none") draws it as SVG, and resvg rasterizes the SVG to PNG.
 *
 * vega, vega-lite and @resvg/resvg-js are imported lazily, on the first chart rendered, so that
 * importing loralab stays fast.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, extname } from "node:path";
import { inputError, UserError } from "../core/errors.js";
import { writeFileAtomic } from "../core/files.js";

export interface PngOptions {
  /** Pixels per SVG unit: 2 (the default) gives a crisp image on high-DPI screens and in docs. */
  scale?: number;
  /** The font for the charts' text (vega's default "sans-serif"); defaults to the first of DejaVu Sans, Liberation Sans, Arial, Helvetica found. */
  fontFamily?: string;
}

/** The extensions {@link saveChart} understands. */
export const CHART_FORMATS = [".svg", ".png", ".json"] as const;

/** Compiles a vega-lite spec (or takes a vega spec, if its `$schema` says so) and draws it as an SVG document. */
export async function chartToSvg(spec: object): Promise<string> {
  const [vega, vegaLite] = await Promise.all([import("vega"), import("vega-lite")]);
  let runtime: ReturnType<typeof vega.parse>;
  try {
    // vega tags the data objects it ingests (Symbol(vega_id)): work on a copy, leave the caller's spec alone.
    spec = structuredClone(spec);
    const vgSpec = isVegaSpec(spec) ? (spec as import("vega").Spec) : vegaLite.compile(spec as import("vega-lite").TopLevelSpec).spec;
    runtime = vega.parse(vgSpec);
  } catch (e) {
    throw new UserError(`invalid chart spec: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  // Errors only: warnings such as "Infinite extent" for an empty chart would land in a notebook cell's stderr.
  const view = new vega.View(runtime, { renderer: "none", logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders a chart spec to a PNG image, `scale` pixels per SVG unit. */
export async function chartToPng(spec: object, options: PngOptions = {}): Promise<Uint8Array> {
  return svgToPng(await chartToSvg(spec), options);
}

/** Rasterizes an SVG document (e.g. from {@link chartToSvg}) to PNG with resvg, using the system's fonts. */
export async function svgToPng(svg: string, { scale = 2, fontFamily }: PngOptions = {}): Promise<Uint8Array> {
  if (!(Number.isFinite(scale) && scale > 0)) throw new UserError(`chart scale must be a positive number, got ${scale}`);
  const { Resvg } = await import("@resvg/resvg-js");
  const family = fontFamily ?? defaultFontFamily();
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    // resvg maps the generic "sans-serif" to Arial unless told otherwise, and falls back to the first
    // font it finds (on Debian: DejaVu Math TeX Gyre) when that is missing: name a real one.
    font: { loadSystemFonts: true, ...(family ? { defaultFontFamily: family, sansSerifFamily: family } : {}) },
    logLevel: "error",
  });
  return resvg.render().asPng();
}

/**
 * Writes a chart to `file`, in the format its extension names: .svg, .png (see {@link chartToPng}
 * for `options`) or .json (the spec itself). The write is atomic and creates missing directories.
 */
export async function saveChart(spec: object, file: string, options: PngOptions = {}): Promise<void> {
  const ext = extname(file).toLowerCase();
  let data: string | Uint8Array;
  if (ext === ".svg") data = await chartToSvg(spec);
  else if (ext === ".png") data = await chartToPng(spec, options);
  else if (ext === ".json") data = `${JSON.stringify(spec, null, 2)}\n`;
  else throw inputError(file, `unknown chart format ${ext ? `"${ext}"` : "(no extension)"}: use ${CHART_FORMATS.join(", ")}`);
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, data);
}

function isVegaSpec(spec: object): boolean {
  const schema = (spec as { $schema?: unknown }).$schema;
  return typeof schema === "string" && /\/schema\/vega\/v\d/.test(schema);
}

/** Sans-serif fonts resvg can use, by family, with where their regular face lives on common systems. */
const SANS_FONTS: [family: string, files: string[]][] = [
  [
    "DejaVu Sans",
    [
      "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", // Debian, Ubuntu (fonts-dejavu-core)
      "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf", // Fedora
      "/usr/share/fonts/TTF/DejaVuSans.ttf", // Arch
      "/usr/share/fonts/dejavu/DejaVuSans.ttf", // Alpine
    ],
  ],
  [
    "Liberation Sans",
    [
      "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
      "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
      "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    ],
  ],
  ["Arial", ["/System/Library/Fonts/Supplemental/Arial.ttf", "/Library/Fonts/Arial.ttf", "C:\\Windows\\Fonts\\arial.ttf"]],
  ["Helvetica", ["/System/Library/Fonts/Helvetica.ttc"]],
];

let fontFamilyFound: string | null | undefined;

/** The first of {@link SANS_FONTS} installed here (looked up once); warns once if there is none. */
function defaultFontFamily(): string | undefined {
  if (fontFamilyFound === undefined) {
    fontFamilyFound = SANS_FONTS.find(([, files]) => files.some((f) => existsSync(f)))?.[0] ?? null;
    if (fontFamilyFound === null) {
      process.emitWarning(
        `no sans-serif font found (${SANS_FONTS.map(([f]) => f).join(", ")}): chart text in PNGs may be missing or in an odd font. ` +
          "On Debian/Ubuntu: apt-get install fonts-dejavu-core",
        { code: "LORALAB_NO_CHART_FONT" },
      );
    }
  }
  return fontFamilyFound ?? undefined;
}
