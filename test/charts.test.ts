/**
 * Chart rendering without a browser: the vega-lite specs loralab produces → SVG (vega, headless) and
 * PNG (resvg). PNGs are decoded here (zlib + PNG row filters) so the tests look at real pixels: the
 * image is not blank, and text actually renders (resvg needs a system font, see src/charts/render.ts).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { inflateSync } from "node:zlib";
import { chartToPng, chartToSvg, saveChart } from "../src/charts/render.js";
import { lossChart } from "../dsl/presentation.js";
import { SweepResult, type TrialRecord } from "../dsl/sweep.js";
import { UserError } from "../src/core/errors.js";
import { tempDir } from "./helpers/paths.js";

const work = tempDir("charts-test");
after(() => fs.rmSync(work, { recursive: true, force: true }));

const points = Array.from({ length: 40 }, (_, i) => [
  { step: i * 10, loss: 4 * Math.exp(-i / 12) + 0.5, series: "train" },
  { step: i * 10, loss: 4.2 * Math.exp(-i / 15) + 0.6, series: "eval" },
]).flat();
const spec = lossChart(points);

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Decodes an 8-bit RGBA, non-interlaced PNG (what resvg writes) to its pixels. */
function decodePng(png: Uint8Array): { width: number; height: number; rgba: Uint8Array } {
  assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE, "PNG signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0,
    height = 0;
  const idat: Uint8Array[] = [];
  for (let at = 8; at < png.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      assert.deepEqual([...data.subarray(8, 13)], [8, 6, 0, 0, 0], "8-bit RGBA, not interlaced");
    } else if (type === "IDAT") idat.push(data);
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 4;
  const rgba = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= 4 ? rgba[y * stride + x - 4]! : 0;
      const b = y > 0 ? rgba[(y - 1) * stride + x]! : 0;
      const c = x >= 4 && y > 0 ? rgba[(y - 1) * stride + x - 4]! : 0;
      const p = a + b - c,
        pa = Math.abs(p - a),
        pb = Math.abs(p - b),
        pc = Math.abs(p - c);
      const predictor = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter]!;
      rgba[y * stride + x] = (line[x]! + predictor) & 0xff;
    }
  }
  return { width, height, rgba };
}

/** Opaque pixels with some strong colour (lines, axes, text; not the white background or light grid). */
function inkPixels({ rgba }: { rgba: Uint8Array }): number {
  let n = 0;
  for (let i = 0; i < rgba.length; i += 4) if (rgba[i + 3]! > 200 && Math.min(rgba[i]!, rgba[i + 1]!, rgba[i + 2]!) < 180) n++;
  return n;
}

/** Opaque and dark pixels: black text (vega draws titles and labels #000, axes #888, lines in colour). */
function darkPixels({ rgba }: { rgba: Uint8Array }): number {
  let n = 0;
  for (let i = 0; i < rgba.length; i += 4) if (rgba[i + 3]! > 200 && rgba[i]! + rgba[i + 1]! + rgba[i + 2]! < 150) n++;
  return n;
}

function svgSize(svg: string): { width: number; height: number } {
  const m = /^<svg[^>]*\swidth="(\d+(?:\.\d+)?)"[^>]*\sheight="(\d+(?:\.\d+)?)"/.exec(svg);
  assert.ok(m, `no width/height on <svg>: ${svg.slice(0, 200)}`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

test("a loss chart renders to SVG with axis titles and a line path", async () => {
  const svg = await chartToSvg(spec);
  assert.match(svg, /^<svg /);
  assert.match(svg, />step<\/text>/, "x axis title");
  assert.match(svg, />loss<\/text>/, "y axis title");
  assert.match(svg, />training loss<\/text>/, "chart title");
  assert.match(svg, />train<\/text>/, "legend entry");
  // One line per series: <g class="mark-line role-mark ..."><path ... d="M...L...">
  const lines = svg.match(/<path[^>]*\sd="M[\d.,-]+L[^"]*"/g) ?? [];
  assert.ok(/class="mark-line role-mark/.test(svg), "a line mark");
  assert.ok(lines.length >= 2, `expected a path per series, got ${lines.length}`);
  const { width, height } = svgSize(svg);
  assert.ok(width > 420 && width < 420 + 200, `svg width ${width}: the spec's 420 plus axes and legend`);
  assert.ok(height > 240 && height < 240 + 120, `svg height ${height}: the spec's 240 plus axes and title`);
});

for (const scale of [1, 2]) {
  test(`a loss chart renders to a PNG of the expected size at scale ${scale} that is not blank`, async () => {
    const { width, height } = svgSize(await chartToSvg(spec));
    const image = decodePng(await chartToPng(spec, { scale }));
    assert.equal(image.width, Math.ceil(width * scale));
    assert.equal(image.height, Math.ceil(height * scale));
    assert.ok(image.width > 420 * scale && image.width < (420 + 200) * scale);
    assert.ok(image.height > 240 * scale && image.height < (240 + 120) * scale);
    const ink = inkPixels(image);
    assert.ok(ink > 0.01 * image.width * image.height, `only ${ink} inked pixels of ${image.width * image.height}`);
    assert.equal(image.rgba[3], 255, "opaque (white) background");
  });
}

test("PNGs are rendered at scale 2 by default", async () => {
  const { width } = svgSize(await chartToSvg(spec));
  assert.equal(decodePng(await chartToPng(spec)).width, Math.ceil(width * 2));
});

test("text renders in the PNG (a system font is found)", async () => {
  // Only a text mark: no axes, no frame, so every dark pixel is a glyph.
  const textOnly = {
    width: 200,
    height: 60,
    config: { view: { stroke: null } },
    data: { values: [{}] },
    mark: { type: "text", fontSize: 40 },
    encoding: { text: { value: "loss" } },
  };
  const svg = await chartToSvg(textOnly);
  assert.match(svg, />loss<\/text>/);
  const image = decodePng(await chartToPng(textOnly, { scale: 1 }));
  const dark = darkPixels(image);
  assert.ok(
    dark > 300,
    `the word "loss" at 40px should darken hundreds of pixels, got ${dark}: no font? (apt-get install fonts-dejavu-core)`,
  );
});

test("a sweep's metric chart (log scale x) renders", async () => {
  const trial = (r: number, perplexity: number): TrialRecord => ({
    trial: `t${r}`,
    config: { r },
    trainableParams: r * 1000,
    finalLoss: 2,
    metrics: { perplexity } as TrialRecord["metrics"],
    wallSeconds: 1,
    peakTensorMiB: 1,
    history: [],
  });
  const result = new SweepResult("s", [trial(2, 9), trial(4, 7.5), trial(8, 7), trial(16, 6.8)], "perplexity");
  const svg = await chartToSvg(result.metricChart());
  assert.match(svg, />perplexity<\/text>/);
  assert.match(svg, />r<\/text>/);
  const image = decodePng(await chartToPng(result.metricChart(), { scale: 1 }));
  const ink = inkPixels(image);
  assert.ok(ink > 500, `only ${ink} inked pixels`);
});

test("saveChart writes .svg, .png and .json by extension, creating directories", async () => {
  const dir = path.join(work, "out", "nested");
  await saveChart(spec, path.join(dir, "loss.svg"));
  await saveChart(spec, path.join(dir, "loss.png"), { scale: 1 });
  await saveChart(spec, path.join(dir, "loss.JSON"));
  assert.match(fs.readFileSync(path.join(dir, "loss.svg"), "utf8"), /^<svg [\s\S]*>step<\/text>/);
  const png = fs.readFileSync(path.join(dir, "loss.png"));
  assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, "loss.JSON"), "utf8")), spec);
  assert.deepEqual(fs.readdirSync(dir).sort(), ["loss.JSON", "loss.png", "loss.svg"], "no temp files left");
});

for (const name of ["loss.pdf", "loss"]) {
  test(`saveChart rejects the file name ${JSON.stringify(name)} (unknown extension) with a UserError, writing nothing`, async () => {
    const file = path.join(work, name);
    await assert.rejects(saveChart(spec, file), (e: unknown) => {
      assert.ok(e instanceof UserError, `not a UserError: ${String(e)}`);
      assert.match(e.message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: unknown chart format`));
      assert.match(e.message, /\.svg, \.png, \.json/);
      return true;
    });
    assert.equal(fs.existsSync(file), false);
  });
}

test("an invalid spec is a UserError", async () => {
  await assert.rejects(chartToSvg({ mark: "no-such-mark", data: { values: [] } }), UserError);
});
