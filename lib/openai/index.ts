// openai/guided-diffusion's models from TypeScript: `import { openai } from 'guided-diffusion'`.
export { UNetModel, EncoderUNetModel } from './models';
export type { NetOptions, UNetModelOptions, EncoderUNetModelOptions, EncoderPool, Snake } from './models';
