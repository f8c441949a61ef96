// Mocha root hooks (loaded by .mocharc.json's "require"). Many tests assert that
// torch.memory().tensors is back to what it was when they began. A test that ends with
// tensors only the GC still holds would let that garbage be collected inside the next test,
// which then sees fewer tensors at its end than at its start (CI saw 75 -> 4). Collecting
// before each test makes every test's starting count its own.
import { collectedMemory } from './helpers';

export const mochaHooks = {
  async beforeEach(): Promise<void> {
    await collectedMemory();
  },
};
