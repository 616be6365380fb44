// wsgate built-in Node.js preload (wsgate dev): an API's default host name leads to wsgate.
//
// Required by node.cjs and preloaded into other Node.js processes of a function through
// NODE_OPTIONS=--require. Built-in modules only; does nothing unless WSGATE_EXECUTE_API is set.
'use strict';

const tls = require('tls');

const INSTALLED = Symbol.for('wsgate.executeApi');

// An API's default host name, as handlers build their callback URL:
// https://{apiId}.execute-api.{region}.amazonaws.com/{stage}.
const EXECUTE_API = /^[a-z0-9-]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?\.?$/i;

// tls.connect(options[, cb]) or tls.connect(port[, host][, options][, cb]) as one options
// object and the arguments after it; null for a path.
function connectArgs(args) {
  const first = args[0];
  if (first !== null && typeof first === 'object') return { options: first, rest: args.slice(1) };
  if (typeof first !== 'number' && !(typeof first === 'string' && /^\d+$/.test(first))) return null;
  let i = 1;
  let host;
  if (typeof args[i] === 'string') host = args[i++];
  let options = {};
  if (args[i] !== null && typeof args[i] === 'object') options = args[i++];
  return { options: Object.assign({}, options, { port: Number(first), host }), rest: args.slice(i) };
}

// WSGATE_EXECUTE_API=host:port: TLS connections to an API's default host name on port 443 go to
// wsgate's TLS listener there, which presents a certificate for that name from the development
// CA (NODE_EXTRA_CA_CERTS); the name is kept for SNI and the certificate check. Every other
// connection is untouched. Covers https, the AWS SDK and fetch (all open TLS with tls.connect).
function redirectExecuteApi(target) {
  if (tls.connect[INSTALLED]) return;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(String(target).trim());
  if (!m) {
    process.stderr.write(`[wsgate bootstrap] WSGATE_EXECUTE_API=${target} is not host:port; execute-api names are not redirected\n`);
    return;
  }
  const [, host, port] = m;
  const original = tls.connect;
  const redirected = function connect(...args) {
    const call = connectArgs(args);
    if (call) {
      const o = call.options;
      const name = String(o.servername || o.host || '');
      const toPort = o.port === undefined || o.port === null || o.port === '' ? 443 : Number(o.port);
      if (!o.socket && !o.path && toPort === 443 && EXECUTE_API.test(name)) {
        const options = Object.assign({}, o, { host, port: Number(port), servername: name.replace(/\.$/, '') });
        return original.call(this, options, ...call.rest);
      }
    }
    return original.apply(this, args);
  };
  redirected[INSTALLED] = true;
  tls.connect = redirected;
  // ES modules that import { connect } from 'node:tls' see the same function.
  require('module').syncBuiltinESMExports();
}

if (process.env.WSGATE_EXECUTE_API) redirectExecuteApi(process.env.WSGATE_EXECUTE_API);
