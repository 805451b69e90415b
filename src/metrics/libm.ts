/**
 * Correctly rounded exp and log. V8's Math.exp/Math.log (fdlibm) are within one ulp but
 * round differently from glibc's in a few percent of cases, and glibc's are what CPython's
 * math.exp/log (and so sacrebleu) use; glibc's are correctly rounded in all but rare cases
 * very close to a rounding boundary. Here the value is computed in double-double (~106 bits)
 * and rounded once.
 */

/** A double-double: the unevaluated sum hi + lo with |lo| ≤ ulp(hi)/2. */
type DD = readonly [number, number];

function twoSum(a: number, b: number): DD {
  const s = a + b;
  const bb = s - a;
  return [s, a - (s - bb) + (b - bb)];
}

function quickTwoSum(a: number, b: number): DD {
  const s = a + b;
  return [s, b - (s - a)];
}

const SPLITTER = 134217729; // 2^27 + 1

/** Dekker's exact product (JS has no fused multiply-add); inputs here are far from overflow. */
function twoProd(a: number, b: number): DD {
  const p = a * b;
  let t = SPLITTER * a;
  const ah = t - (t - a),
    al = a - ah;
  t = SPLITTER * b;
  const bh = t - (t - b),
    bl = b - bh;
  return [p, ah * bh - p + ah * bl + al * bh + al * bl];
}

function add(a: DD, b: DD): DD {
  const s = twoSum(a[0], b[0]);
  const t = twoSum(a[1], b[1]);
  const u = quickTwoSum(s[0], s[1] + t[0]);
  return quickTwoSum(u[0], u[1] + t[1]);
}

function mul(a: DD, b: DD): DD {
  const p = twoProd(a[0], b[0]);
  return quickTwoSum(p[0], p[1] + (a[0] * b[1] + a[1] * b[0]));
}

/** 1/n in double-double. */
function inverse(n: number): DD {
  const q = 1 / n;
  const r = twoProd(q, n); // q·n = r0 + r1 exactly, so 1/n - q = (1 - r0 - r1)/n
  return quickTwoSum(q, (1 - r[0] - r[1]) / n);
}

const LN2: DD = [0.6931471805599453, 2.3190468138462996e-17];

/** 1/n! for n = 0..11: the Taylor coefficients of e^s. */
const INV_FACTORIAL: DD[] = [
  [1, 0],
  [1, 0],
];
for (let n = 2, f = 2; n <= 11; f *= ++n) INV_FACTORIAL.push(inverse(f));

/** e^x in double-double, for normal results (-708 < x < 709). */
function expDD(x: number): DD {
  const k = Math.round(x / LN2[0]);
  // x = k·ln2 + 256·s with |s| < 0.0014, where 11 Taylor terms reach 1e-36.
  const r = add([x, 0], mul(LN2, [-k, 0]));
  const s: DD = [r[0] / 256, r[1] / 256];
  let q = INV_FACTORIAL[11]!;
  for (let n = 10; n >= 1; n--) q = add(INV_FACTORIAL[n]!, mul(q, s));
  // p = e^s - 1, squared 8 times as (1 + p)² - 1 = 2p + p², which keeps the small part exact.
  let p = mul(q, s);
  for (let i = 0; i < 8; i++) p = add([2 * p[0], 2 * p[1]], mul(p, p));
  const e = add([1, 0], p);
  // Scaling by 2^k is exact while the result stays normal; two factors keep 2^k itself finite.
  const half = Math.trunc(k / 2);
  const scale = 2 ** half * 2 ** (k - half);
  return [e[0] * scale, e[1] * scale];
}

/** Math.exp, correctly rounded. */
export function exp(x: number): number {
  if (!(x > -708 && x < 709)) return Math.exp(x); // subnormal, overflow, ±Infinity, NaN
  const [hi, lo] = expDD(x);
  return hi + lo;
}

/** Math.log, correctly rounded: one Newton step from fdlibm's estimate y. */
export function log(x: number): number {
  if (!(x >= 2.2250738585072014e-308 && x < Infinity)) return Math.log(x); // ≤ 0, subnormal, Infinity, NaN
  const y = Math.log(x);
  const e = expDD(y);
  // log(x) = y + log(x/e^y) ≈ y + (x - e^y)/e^y; the dropped second-order term is far below an ulp.
  const diff = add([x, 0], [-e[0], -e[1]]);
  return y + diff[0] / e[0];
}
