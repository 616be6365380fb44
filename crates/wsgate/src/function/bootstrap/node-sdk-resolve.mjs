// wsgate built-in Node.js module hooks (registered by node.cjs when WSGATE_NODE_SDKS is set).
//
// Lambda's Node.js runtime lets a handler import the AWS SDK for JavaScript v3 without
// installing it. `wsgate dev --provide-sdks` installs the packages a project imports into a
// folder of its own cache; this hook makes them resolvable from ES modules (for CommonJS,
// wsgate sets NODE_PATH). A bare specifier the handler's own node_modules resolve is untouched:
// only one that is not found anywhere else is looked up in that folder.
import { pathToFileURL } from 'node:url';
import path from 'node:path';

let fallbackParent = null;

export function initialize(data) {
  if (data && data.dir) fallbackParent = pathToFileURL(path.join(data.dir, 'wsgate-sdks.mjs')).href;
}

function isBare(specifier) {
  return !/^(?:[./]|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(specifier);
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (!fallbackParent || !isBare(specifier) || !error || error.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    try {
      return await nextResolve(specifier, { ...context, parentURL: fallbackParent });
    } catch (_) {
      throw error;
    }
  }
}
