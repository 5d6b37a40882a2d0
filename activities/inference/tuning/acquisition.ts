/**
 * Log expected improvement for minimisation, computed without underflow (Ament et al., "Unexpected Improvements to
 * Expected Improvement", NeurIPS 2023): EI = σ·h(z) with z = (best − μ)/σ and h(z) = z·Φ(z) + φ(z). Far into the
 * left tail h underflows to 0 and every candidate would tie; in log space it stays ordered.
 *
 * log h(z):
 * - z > −1: directly, log(zΦ(z) + φ(z)) (no cancellation: both terms are well away from zero);
 * - −30 < z ≤ −1: log φ(z) + log1p(−|z|·Φ(z)/φ(z)), the Mills ratio Φ/φ taken from the log CDF and log PDF (@stdlib);
 * - z ≤ −30: the asymptotic series 1 − |z|Φ/φ = 1/z² − 3/z⁴ + 15/z⁶ − …, whose truncation error there is < 1e-9.
 */
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import normalLogcdf from '@stdlib/stats-base-dists-normal-logcdf';
import normalLogpdf from '@stdlib/stats-base-dists-normal-logpdf';
import normalPdf from '@stdlib/stats-base-dists-normal-pdf';

export function logH(z: number): number {
  if (z > -1) return Math.log(z * normalCdf(z, 0, 1) + normalPdf(z, 0, 1));
  const logPdf = normalLogpdf(z, 0, 1);
  if (z > -30) {
    const mills = Math.exp(normalLogcdf(z, 0, 1) - logPdf);
    return logPdf + Math.log1p(z * mills);
  }
  const z2 = z * z;
  return logPdf + Math.log((1 - 3 / z2 + 15 / (z2 * z2) - 105 / (z2 * z2 * z2)) / z2);
}

/** log EI of a candidate with posterior mean `mean` and standard deviation `std`, against the incumbent `best`. */
export function logExpectedImprovement(mean: number, std: number, best: number): number {
  if (!(std > 0)) return mean < best ? Math.log(best - mean) : -Infinity;
  return Math.log(std) + logH((best - mean) / std);
}
