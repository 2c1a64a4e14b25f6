/**
 * log2 histograms as the kernel keeps them: slot i counts values in
 * [2^i, 2^(i+1)) ns (slot 0 also counts 0), the last slot is open-ended.
 */

const POW2 = Float64Array.from({ length: 65 }, (_, i) => 2 ** i);

/** Lower bound of a slot, ns. */
export function slotLow(i: number): number {
  return i === 0 ? 0 : (POW2[i] as number);
}

/**
 * Quantile q (0..1) of the histogram in hist[base .. base + slots), whose
 * total count is `total`, by linear interpolation inside the slot that holds
 * it. Allocates nothing: the feature stage calls it per row.
 */
export function quantileAt(
  hist: ArrayLike<number>,
  base: number,
  slots: number,
  total: number,
  q: number,
): number {
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < slots; i++) {
    const n = hist[base + i] ?? 0;
    if (n > 0 && seen + n >= rank) {
      const lo = slotLow(i);
      return Math.round(lo + ((rank - seen) / n) * ((POW2[i + 1] as number) - lo));
    }
    seen += n;
  }
  return POW2[slots] as number;
}

/** Quantile q (0..1) of a whole histogram; 0 for an empty one. */
export function histogramQuantile(hist: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i] ?? 0;
  return quantileAt(hist, 0, hist.length, total, q);
}
