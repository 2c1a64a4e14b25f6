// Types of bench/lib/fuzz-targets.mjs, for the tests that import it.
import type fc from 'fast-check';

export declare const CASE_TIME_LIMIT_MS: number;
/** Properties whose predicate returns undefined, or a string saying what went wrong. */
export declare function fuzzTargets(
  m: Record<string, unknown>,
): Record<string, fc.IProperty<unknown[]>>;
export declare function pythonFrameCases(m: Record<string, unknown>): fc.Arbitrary<Uint8Array>;
export declare function pythonDriverInput(cases: Uint8Array[]): Buffer;
