/** Command-line values of the benchmarks, checked with messages naming the flag. */

/** `value` as a number above 0 (or from 0 with `zero`), an integer with `integer`. */
export function positive(name: string, value: string, { integer = false, zero = false } = {}): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || (zero ? n < 0 : n <= 0)) {
    throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} ${zero ? 'from 0' : 'above 0'}, got "${value}"`);
  }
  return n;
}
