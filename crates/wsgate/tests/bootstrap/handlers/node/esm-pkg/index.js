// ESM in a .js file, selected by package.json "type": "module"; uses top-level await.
import { basename } from 'node:path';

const loaded = await Promise.resolve('tla-ok');

export const handler = async (event) => ({ loaded, file: basename(new URL(import.meta.url).pathname), body: event.body });
