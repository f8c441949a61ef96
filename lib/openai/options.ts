// Reads an options object whose keys may be snake_case (as openai's Python) or camelCase,
// checking each value against a table; the messages name the key as the caller spelled it.
import { checkKeyList } from '../option-keys';

export type Kind =
  | 'positiveInt'
  | 'int' // any integer (checked further by the caller)
  | 'headOption' // a positive integer or -1
  | 'fraction' // in [0, 1)
  | 'boolean'
  | 'rates' // array of integers >= 0
  | 'mults' // non-empty array of positive numbers
  | 'classes' // positive integer, or null/undefined for none
  | 'string';

export interface Field {
  /** camelCase name; the snake_case spelling is derived. */
  name: string;
  kind: Kind;
  /** Absent means required. */
  default?: unknown;
  /** Allowed values for 'string' and for fixed-value options. */
  oneOf?: readonly unknown[];
}

export const snakeCase = (name: string): string => name.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
/** A train flag's number, from a number or a string as their argparse takes it. */
export function flagNumber(value: unknown, flag: string, integer: boolean): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new TypeError(`${flag}: expected ${integer ? 'an integer' : 'a number'} but received ${String(value)}`);
  return n;
}

/** The trainers' distributed flag: a boolean (not one of their argparse flags). */
export function distributedFlag(value: unknown): boolean {
  if (value !== undefined && typeof value !== 'boolean') throw new TypeError(`distributed must be a boolean; got ${String(value)}`);
  return value === true;
}

export const camelCase = (name: string): string => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function check(where: string, key: string, field: Field, v: unknown): unknown {
  const fail = (what: string, Err: typeof TypeError = TypeError): never => {
    throw new Err(`${where}: expected ${what} for ${key} but received ${describe(v)}`);
  };
  const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);
  switch (field.kind) {
    case 'positiveInt':
      if (typeof v !== 'number') fail('a positive integer');
      if (!isInt(v) || v <= 0) fail('a positive integer', RangeError);
      break;
    case 'int':
      if (typeof v !== 'number') fail('an integer');
      if (!isInt(v)) fail('an integer', RangeError);
      break;
    case 'headOption':
      if (typeof v !== 'number') fail('a positive integer or -1');
      if (!isInt(v) || (v <= 0 && v !== -1)) fail('a positive integer or -1', RangeError);
      break;
    case 'fraction':
      if (typeof v !== 'number') fail('a number in [0, 1)');
      if (!((v as number) >= 0 && (v as number) < 1)) fail('a number in [0, 1)', RangeError);
      break;
    case 'boolean':
      if (typeof v !== 'boolean') fail('a boolean');
      break;
    case 'rates':
      if (!Array.isArray(v)) fail('an array of downsample rates (integers >= 0)');
      if (!(v as unknown[]).every((r) => isInt(r) && r >= 0)) fail('an array of downsample rates (integers >= 0)', RangeError);
      return [...(v as number[])];
    case 'mults':
      if (!Array.isArray(v)) fail('a non-empty array of positive numbers');
      if ((v as unknown[]).length === 0 || !(v as unknown[]).every((m) => typeof m === 'number' && Number.isFinite(m) && m > 0)) {
        fail('a non-empty array of positive numbers', RangeError);
      }
      return [...(v as number[])];
    case 'classes':
      if (v === null) return null;
      if (typeof v !== 'number') fail('a positive integer or null');
      if (!isInt(v) || v <= 0) fail('a positive integer or null', RangeError);
      break;
    case 'string':
      if (typeof v !== 'string') fail(`one of ${field.oneOf?.map(describe).join(', ')}`);
      break;
  }
  if (field.oneOf && !field.oneOf.includes(v)) {
    throw new RangeError(`${where}: expected one of ${field.oneOf.map(describe).join(', ')} for ${key} but received ${describe(v)}`);
  }
  return v;
}

/**
 * Returns {camelName: value} for every field, defaults filled in. Throws TypeError for an
 * option that is not an object, an unknown key, a key given in both spellings or a value
 * of the wrong type; RangeError for a value out of range; TypeError for a missing required one.
 */
export function readOptions(where: string, input: unknown, fields: readonly Field[]): Record<string, unknown> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TypeError(`${where}: expected an options object but received ${describe(input)}`);
  }
  const given = input as Record<string, unknown>;
  const byName = new Map<string, Field>();
  for (const f of fields) {
    byName.set(f.name, f);
    byName.set(snakeCase(f.name), f);
  }
  checkKeyList(where, given, fields.flatMap((f) => [f.name, snakeCase(f.name)]));
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const snake = snakeCase(f.name);
    const keys = [f.name, snake].filter((k, i, a) => a.indexOf(k) === i && given[k] !== undefined);
    if (keys.length > 1) throw new TypeError(`${where}: ${f.name} is given twice (as ${f.name} and ${snake})`);
    if (keys.length === 0) {
      if (!('default' in f)) throw new TypeError(`${where}: ${snake} (${f.name}) is required`);
      out[f.name] = Array.isArray(f.default) ? [...f.default] : f.default;
    } else {
      out[f.name] = check(where, keys[0], f, given[keys[0]]);
    }
  }
  return out;
}
