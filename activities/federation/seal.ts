/** node-seal (Microsoft SEAL in WebAssembly), loaded once per process. Pinned to 6.0.3: 7.x fails on Node 20. */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// The package's "main" is the Node build; its ESM "module" entry targets browsers.
type SealFactory = typeof import('node-seal/throws_wasm_node_umd.js').default;
const loadSeal = require('node-seal') as SealFactory;

let seal: ReturnType<SealFactory> | undefined;
export function getSeal(): ReturnType<SealFactory> {
  seal ??= loadSeal();
  return seal;
}
