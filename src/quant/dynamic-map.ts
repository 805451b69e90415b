/**
 * The signed 8-bit "dynamic" map of bitsandbytes (`create_dynamic_map(signed=True)`, after Dettmers 2015,
 * arXiv:1511.04561), the data type its double quantization stores the NF4 block scales in: 256 sorted values,
 * 0, 1, and for each decade 10^(e−6), e = 0..6, the midpoints of 2^e + 1 evenly spaced points in [0.1, 1], with
 * both signs — dense near 0, about 1/64 apart near ±1.
 *
 * Computed in double and rounded once to float32. bitsandbytes computes it in float32 with torch.linspace, whose
 * rounding depends on the torch build (with torch 1.13 on x86-64, 90 of the 256 entries differ by 1 ulp); that is why
 * it stores the map with every double-quantized weight (`nested_quant_map`), and an import must use the stored map.
 */
function build(): Float32Array {
  const values: number[] = [0, 1];
  for (let e = 0; e <= 6; e++) {
    const count = 2 ** e + 1;
    const point = (k: number) => 0.1 + (0.9 * k) / (count - 1);
    const scale = 1 / 10 ** (6 - e);
    for (let k = 0; k + 1 < count; k++) {
      const mid = scale * ((point(k) + point(k + 1)) / 2);
      values.push(mid, -mid);
    }
  }
  return Float32Array.from(values).sort();
}

export const DYNAMIC_MAP: Float32Array = build();
