// Every options object refuses keys it does not know, naming each and the known key nearest to
// it (native/js/option_keys.cc): { strenght: 0.5 } is an error, not silently ignored.
import { binding } from './binding';

/** All keys of an options type, as a record the compiler checks complete and exact. */
export type KeysOf<T> = { readonly [K in keyof Required<T>]: true };

/** Throws "<who>: unknown option 'x' (did you mean 'y'?)" for a key of options not in known. */
export function checkOptionKeys<T>(who: string, options: unknown, known: KeysOf<T>): void {
  binding.checkOptionKeys(who, options, Object.keys(known));
}

/** The same, for a list of keys built at run time (a Set, the fields of a table). */
export function checkKeyList(who: string, options: unknown, known: Iterable<string>): void {
  binding.checkOptionKeys(who, options, [...known]);
}
