/**
 * log2 histograms as the kernel keeps them: slot i counts values in
 * [2^i, 2^(i+1)) ns (slot 0 also counts 0), the last slot is open-ended.
 */

/** Lower bound of a slot, ns. */
export function slotLow(i: number): number {
  return i === 0 ? 0 : 2 ** i;
}

/**
 * Quantile q (0..1) estimated by linear interpolation inside the slot that
 * holds it. Returns 0 for an empty histogram.
 */
export function histogramQuantile(hist: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i] ?? 0;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    const n = hist[i] ?? 0;
    if (n > 0 && seen + n >= rank) {
      const lo = slotLow(i);
      const hi = 2 ** (i + 1);
      return Math.round(lo + ((rank - seen) / n) * (hi - lo));
    }
    seen += n;
  }
  return 2 ** hist.length;
}
