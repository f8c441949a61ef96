// The command line of the benches that run openai/guided-diffusion's own code beside ours
// (bench/openai_nets.ts, bench/openai_train.ts, bench/cuda/openai_nets.ts): --repo PATH [--rounds N] [--quick] [--out FILE].
import * as fs from 'fs';
import * as path from 'path';

export interface OpenaiBenchArgs {
  repo: string;
  rounds: number;
  quick: boolean;
  out: string;
}

/** `needs`: a file of their checkout the bench runs (relative to it), to tell a wrong --repo at once. */
export function parseOpenaiBenchArgs(argv: string[], defaults: { out: string; rounds: number; usage: string; needs: string }): OpenaiBenchArgs {
  const args: OpenaiBenchArgs = { repo: process.env.GD_OPENAI_REPO ?? '', rounds: defaults.rounds, quick: false, out: defaults.out };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--repo') args.repo = value();
    else if (a === '--rounds') args.rounds = Number(value());
    else if (a === '--quick') args.quick = true;
    else if (a === '--out') args.out = path.resolve(value());
    else throw new Error(`unknown argument ${a}; ${defaults.usage}`);
  }
  if (!args.repo || !fs.existsSync(path.join(args.repo, defaults.needs))) {
    throw new Error(`--repo (or GD_OPENAI_REPO) must be a checkout of openai/guided-diffusion; got '${args.repo}'`);
  }
  if (!(Number.isInteger(args.rounds) && args.rounds >= 1)) throw new Error(`--rounds must be a positive integer; got ${args.rounds}`);
  if (args.quick) args.rounds = 1;
  return args;
}
