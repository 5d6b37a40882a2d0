/** node-seal (Microsoft SEAL in WebAssembly), loaded once per process. Pinned to 6.0.3: 7.x fails on Node 20. */
import { createRequire } from 'node:module';
import type { SEALLibrary } from 'node-seal/implementation/seal.js';

const require = createRequire(import.meta.url);
// The package's "main" is the Node build; its ESM "module" entry targets browsers.
const loadSeal = require('node-seal') as () => Promise<SEALLibrary>;

let seal: Promise<SEALLibrary> | undefined;
export function getSeal(): Promise<SEALLibrary> {
  seal ??= loadSeal();
  return seal;
}
