// wsgate built-in Node.js bootstrap: an AWS Lambda Runtime API client.
//
// Run as `node node.js`. Node 18+, built-in modules only (no npm packages).
//
// Environment (set by wsgate):
//   AWS_LAMBDA_RUNTIME_API   host:port of the Runtime API (no scheme)
//   _HANDLER                 "file.export", e.g. "index.handler", "src/index.handler", "index.handlers.connect"
//   LAMBDA_TASK_ROOT         the code folder; the module is resolved relative to it
//                            (file.js -> CommonJS or ESM per package.json "type", file.mjs -> ESM, file.cjs -> CJS)
//   AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
//   AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME, AWS_REGION, credentials.
//
// Loop: load the handler (failure -> POST /runtime/init/error, exit 1), then forever
// GET /runtime/invocation/next -> handler(event, context[, callback]) -> POST .../response or .../error.
'use strict';

const http = require('http');
const path = require('path');
const fs = require('fs');
const url = require('url');

const API_VERSION = '2018-06-01';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';

// ---------------------------------------------------------------------------------------
// Logging helpers
// ---------------------------------------------------------------------------------------

function logStderr(text) {
  try {
    process.stderr.write(text.endsWith('\n') ? text : text + '\n');
  } catch (_) {
    /* ignore */
  }
}

function fatal(message) {
  logStderr(`[wsgate bootstrap] ${message}`);
  process.exit(1);
}

// Lambda's Node runtime prints errors as: "<ISO time>\t<request id>\tERROR\t<label> \t{json}".
function printError(requestId, label, body) {
  const formatted = {
    errorType: body.errorType,
    errorMessage: body.errorMessage,
    stack: body.stackTrace,
  };
  let json;
  try {
    json = JSON.stringify(formatted);
  } catch (_) {
    json = String(body.errorMessage);
  }
  logStderr(`${new Date().toISOString()}\t${requestId || 'undefined'}\tERROR\t${label} \t${json}`);
}

// ---------------------------------------------------------------------------------------
// Runtime API client
// ---------------------------------------------------------------------------------------

class RuntimeApiUnavailable extends Error {}

class RuntimeClient {
  constructor(address) {
    let addr = String(address).trim().replace(/^https?:\/\//i, '').replace(/\/+$/, '');
    let host = addr;
    let port = 80;
    const m = addr.match(/^\[([^\]]+)\](?::(\d+))?$/) || addr.match(/^([^:]+)(?::(\d+))?$/);
    if (m) {
      host = m[1];
      if (m[2]) port = Number(m[2]);
    }
    this.address = addr;
    this.host = host;
    this.port = port;
    this.base = `/${API_VERSION}`;
    // Keep-alive; idle sockets in the free pool are unref'd by Node, so they do not keep the
    // event loop alive (needed for callbackWaitsForEmptyEventLoop). No socket timeout: /next long-polls.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  }

  _once(method, p, body, headers) {
    return new Promise((resolve, reject) => {
      const hdrs = Object.assign({}, headers || {});
      if (body != null) hdrs['Content-Length'] = Buffer.byteLength(body);
      const req = http.request(
        { host: this.host, port: this.port, path: this.base + p, method, headers: hdrs, agent: this.agent },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', (e) => reject(Object.assign(e, { reused: req.reusedSocket })));
          res.on('aborted', () => reject(Object.assign(new Error('response aborted'), { reused: req.reusedSocket })));
        },
      );
      req.on('error', (e) => reject(Object.assign(e, { reused: req.reusedSocket })));
      if (body != null) req.write(body);
      req.end();
    });
  }

  async request(method, p, body, headers) {
    let lastError;
    // A reused keep-alive socket may have been closed by the server while idle: retry once.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        return await this._once(method, p, body, headers);
      } catch (e) {
        lastError = e;
        if (!e || !e.reused) break;
      }
    }
    const err = new RuntimeApiUnavailable(
      `${method} ${this.address}${this.base}${p} failed: ${(lastError && (lastError.code || lastError.message)) || lastError}`,
    );
    throw err;
  }

  nextInvocation() {
    return this.request('GET', '/runtime/invocation/next');
  }

  postResponse(requestId, payload) {
    return this.request('POST', `/runtime/invocation/${encodeURIComponent(requestId)}/response`, payload, {
      'Content-Type': 'application/json',
    });
  }

  postError(requestId, errorBody, errorTypeHeader) {
    return this.request('POST', `/runtime/invocation/${encodeURIComponent(requestId)}/error`, errorJson(errorBody), {
      'Content-Type': 'application/json',
      [ERROR_TYPE_HEADER]: errorTypeHeader,
    });
  }

  postInitError(errorBody, errorTypeHeader) {
    return this.request('POST', '/runtime/init/error', errorJson(errorBody), {
      'Content-Type': 'application/json',
      [ERROR_TYPE_HEADER]: errorTypeHeader,
    });
  }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

function errorJson(body) {
  try {
    return JSON.stringify(body);
  } catch (_) {
    return JSON.stringify({ errorMessage: 'unserializable error', errorType: 'Runtime.Unknown', stackTrace: [] });
  }
}

function isError(e) {
  return e instanceof Error || (e != null && typeof e === 'object' && typeof e.message === 'string' && typeof e.stack === 'string');
}

// Same shape as the Lambda Node runtime's error response, with the stack under "stackTrace".
function errorBody(error) {
  try {
    if (isError(error)) {
      return {
        errorType: String(error.name || (error.constructor && error.constructor.name) || 'Error'),
        errorMessage: String(error.message),
        // Frames of this bootstrap are left out; the user's frames come first anyway.
        stackTrace: typeof error.stack === 'string' ? error.stack.split('\n').filter((l) => !l.includes(__filename)) : [],
      };
    }
    let message;
    if (error !== null && typeof error === 'object') {
      try {
        message = JSON.stringify(error);
      } catch (_) {
        message = String(error);
      }
    } else {
      message = String(error);
    }
    return { errorType: typeof error, errorMessage: message, stackTrace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
      stackTrace: [],
    };
  }
}

class InitError extends Error {
  constructor(errorType, message, stackTrace) {
    super(message);
    this.errorType = errorType;
    this.stackTrace = stackTrace || [];
  }
}

// ---------------------------------------------------------------------------------------
// wsgate dev: what Lambda's environment gives a handler
// ---------------------------------------------------------------------------------------

// WSGATE_NODE_SDKS=folder (`wsgate dev --provide-sdks`): the AWS SDK packages installed there
// resolve from ES modules as they do in Lambda (CommonJS finds them through NODE_PATH).
function provideSdks(dir) {
  const mod = require('module');
  if (typeof mod.register !== 'function') {
    logStderr(`[wsgate bootstrap] Node ${process.version} cannot register module hooks (20.6+ can): ES modules will not find the SDKs in ${dir}`);
    return;
  }
  mod.register(url.pathToFileURL(path.join(__dirname, 'node-sdk-resolve.mjs')).href, { data: { dir } });
}

// A package Lambda's Node.js runtime provides (the AWS SDK for JavaScript v3), named in a
// "Cannot find package/module" message; undefined for any other.
function providedPackage(message) {
  const m = /Cannot find (?:package|module) '((?:@aws-sdk|@smithy)\/[^/']+)/.exec(String(message || ''));
  return m ? m[1] : undefined;
}

function missingSdkHint(pkg, taskRoot) {
  const provided = process.env.WSGATE_NODE_SDKS
    ? 'or restart wsgate dev --provide-sdks, which installs the packages the code imports when it starts'
    : 'or start wsgate dev with --provide-sdks';
  return (
    `${pkg} is part of the AWS SDK for JavaScript v3, which Lambda's Node.js runtime provides; it is not installed here. ` +
    `Install it where this handler finds it: npm install --prefix ${JSON.stringify(taskRoot)} ${pkg} (${provided})`
  );
}

// ---------------------------------------------------------------------------------------
// Handler loading (mirrors the Lambda Node runtime's UserFunction.load)
// ---------------------------------------------------------------------------------------

function packageType(dir) {
  let current = dir;
  for (;;) {
    const pj = path.join(current, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8')).type || 'commonjs';
      } catch (_) {
        return 'commonjs';
      }
    }
    const parent = path.dirname(current);
    if (parent === current) return 'commonjs';
    current = parent;
  }
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (_) {
    return false;
  }
}

async function importEsm(file) {
  return import(url.pathToFileURL(file).href);
}

async function requireOrImport(file) {
  try {
    return require(file);
  } catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) return importEsm(file);
    throw e;
  }
}

async function loadModuleFile(base, displayName) {
  if (isFile(base + '.js')) {
    const file = base + '.js';
    return packageType(path.dirname(file)) === 'module' ? importEsm(file) : requireOrImport(file);
  }
  if (isFile(base + '.mjs')) return importEsm(base + '.mjs');
  if (isFile(base + '.cjs')) return require(base + '.cjs');
  let resolved;
  try {
    resolved = require.resolve(base); // e.g. a folder with index.js / package.json "main"
  } catch (_) {
    const e = new Error(`Cannot find module '${displayName}'`);
    e.code = 'MODULE_NOT_FOUND';
    e.wsgateNotFound = true;
    throw e;
  }
  if (resolved.endsWith('.mjs')) return importEsm(resolved);
  return requireOrImport(resolved);
}

async function loadHandler(taskRoot, handlerString) {
  handlerString = String(handlerString || '').trim();
  if (!handlerString) throw new InitError('Runtime.MalformedHandlerName', 'Bad handler: _HANDLER is not set');
  if (handlerString.includes('..')) {
    throw new InitError('Runtime.MalformedHandlerName', `'${handlerString}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`);
  }
  const slash = handlerString.lastIndexOf('/');
  const moduleRoot = handlerString.slice(0, slash + 1);
  const moduleAndHandler = handlerString.slice(slash + 1);
  const match = moduleAndHandler.match(/^([^.]*)\.(.*)$/);
  if (!match || !match[1] || !match[2]) {
    throw new InitError('Runtime.MalformedHandlerName', `Bad handler ${handlerString}`);
  }
  const moduleName = match[1];
  const handlerPath = match[2];
  const displayName = moduleRoot + moduleName;
  const base = path.resolve(taskRoot, moduleRoot, moduleName);

  let app;
  try {
    app = await loadModuleFile(base, displayName);
  } catch (e) {
    // Missing module, missing dependency, syntax error or an exception at module top level.
    if (e && e.wsgateNotFound) {
      throw new InitError('Runtime.ImportModuleError', `Error: Cannot find module '${displayName}'`, []);
    }
    const b = errorBody(e);
    const pkg = providedPackage(b.errorMessage);
    const hint = pkg ? `. ${missingSdkHint(pkg, taskRoot)}` : '';
    throw new InitError(
      'Runtime.ImportModuleError',
      `Unable to import module '${displayName}': ${b.errorType}: ${b.errorMessage}${hint}`,
      b.stackTrace,
    );
  }

  let fn = app;
  for (const key of handlerPath.split('.')) {
    fn = fn == null ? undefined : fn[key];
  }
  if (fn === undefined || fn === null) {
    throw new InitError('Runtime.HandlerNotFound', `${handlerString} is undefined or not exported`);
  }
  if (typeof fn !== 'function') {
    throw new InitError('Runtime.HandlerNotFound', `${handlerString} is not a function`);
  }
  return fn;
}

// ---------------------------------------------------------------------------------------
// Invocation
// ---------------------------------------------------------------------------------------

function parseJsonHeader(raw) {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw);
  } catch (_) {
    return undefined;
  }
}

function deadlineFrom(headers) {
  const raw = headers['lambda-runtime-deadline-ms'];
  const n = Number(raw);
  if (raw !== undefined && raw !== '' && Number.isFinite(n)) return n;
  const timeout = Number(process.env.AWS_LAMBDA_FUNCTION_TIMEOUT || '300');
  return Date.now() + (Number.isFinite(timeout) ? timeout : 300) * 1000;
}

// Current invocation, used by the process-level uncaughtException/unhandledRejection hooks.
let current = null;

function isPromiseLike(v) {
  return v != null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

// Runs the handler; resolves to { error } or { result }. Never rejects.
function runHandler(handler, event, headers) {
  return new Promise((resolve) => {
    let finished = false;
    let pendingCallback = null; // callback result waiting for an empty event loop
    let waitingForLoop = false;

    const onBeforeExit = () => {
      // The event loop is empty: deliver a pending callback result, or null if the handler
      // never produced one (Lambda's behaviour for sync/callback handlers).
      if (pendingCallback) finish(pendingCallback.err, pendingCallback.result);
      else finish(null, undefined);
    };
    const waitForEmptyLoop = () => {
      if (!waitingForLoop) {
        waitingForLoop = true;
        process.on('beforeExit', onBeforeExit);
      }
    };
    function finish(err, result) {
      if (finished) return;
      finished = true;
      if (waitingForLoop) process.removeListener('beforeExit', onBeforeExit);
      resolve(err != null ? { error: err } : { result });
    }

    const requestId = headers['lambda-runtime-aws-request-id'];
    const deadline = deadlineFrom(headers);
    const cognito = parseJsonHeader(headers['lambda-runtime-cognito-identity']);
    const context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      memoryLimitInMB: String(process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '128'),
      awsRequestId: requestId,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      identity: cognito
        ? { cognitoIdentityId: cognito.cognitoIdentityId, cognitoIdentityPoolId: cognito.cognitoIdentityPoolId }
        : undefined,
      clientContext: parseJsonHeader(headers['lambda-runtime-client-context']),
      tenantId: headers['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis() {
        return Math.max(Math.floor(deadline - Date.now()), 0);
      },
      // Legacy API: answers immediately, without waiting for the event loop.
      succeed(result) {
        finish(null, result);
      },
      fail(err) {
        finish(err == null ? 'handled' : err, undefined);
      },
      done(err, result) {
        finish(err, result);
      },
    };

    const callback = (err, result) => {
      if (finished || pendingCallback) return;
      if (context.callbackWaitsForEmptyEventLoop) {
        pendingCallback = { err, result };
        waitForEmptyLoop();
      } else {
        finish(err, result);
      }
    };

    current = { requestId, finish };

    let ret;
    try {
      ret = handler(event, context, callback);
    } catch (e) {
      finish(e == null ? new Error(String(e)) : e, undefined);
      return;
    }
    if (isPromiseLike(ret)) {
      Promise.resolve(ret).then(
        (r) => finish(null, r),
        (e) => finish(e == null ? new Error(`Promise rejected with ${e}`) : e, undefined),
      );
    } else if (handler.length < 3 && ret !== undefined) {
      finish(null, ret); // plain synchronous handler returning a value
    } else {
      waitForEmptyLoop(); // callback-style (or legacy context.succeed/done) handler
    }
  });
}

async function post(what, fn) {
  let res;
  try {
    res = await fn();
  } catch (e) {
    fatal(`Runtime API unreachable while posting ${what}: ${e.message}`);
  }
  if (res.status < 200 || res.status >= 300) {
    logStderr(`[wsgate bootstrap] Runtime API answered ${res.status} to ${what}: ${res.body.toString('utf8', 0, 500)}`);
  }
  return res.status;
}

async function handleInvocation(client, handler, headers, body) {
  const requestId = headers['lambda-runtime-aws-request-id'];
  const trace = headers['lambda-runtime-trace-id'];
  if (trace) process.env._X_AMZN_TRACE_ID = trace;
  else delete process.env._X_AMZN_TRACE_ID;

  let event;
  try {
    const text = body.toString('utf8');
    event = text.length ? JSON.parse(text) : null;
  } catch (e) {
    const b = { errorType: 'Runtime.UnmarshalError', errorMessage: `Unable to unmarshal input: ${e.message}`, stackTrace: [] };
    printError(requestId, 'Invoke Error', b);
    await post('error', () => client.postError(requestId, b, 'Runtime.UnmarshalError'));
    return;
  }

  const outcome = await runHandler(handler, event, headers);
  current = null;

  if ('error' in outcome) {
    const b = errorBody(outcome.error);
    printError(requestId, 'Invoke Error', b);
    await post('error', () => client.postError(requestId, b, 'Unhandled'));
    return;
  }

  let payload;
  try {
    payload = JSON.stringify(outcome.result);
    if (payload === undefined) payload = 'null';
  } catch (e) {
    const b = { errorType: 'Runtime.MarshalError', errorMessage: `Unable to stringify response body as json: ${e.message}`, stackTrace: [] };
    printError(requestId, 'Invoke Error', b);
    await post('error', () => client.postError(requestId, b, 'Runtime.MarshalError'));
    return;
  }

  const status = await post('response', () => client.postResponse(requestId, payload));
  if (status === 413) {
    const b = {
      errorType: 'Function.ResponseSizeTooLarge',
      errorMessage: `Response payload size (${Buffer.byteLength(payload)} bytes) exceeded maximum allowed payload size.`,
      stackTrace: [],
    };
    printError(requestId, 'Invoke Error', b);
    await post('error', () => client.postError(requestId, b, 'Function.ResponseSizeTooLarge'));
  }
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

let phase = 'init';
let client = null;

// Like Lambda: an uncaught exception or unhandled rejection fails the current invocation
// (or the init) and ends the process; wsgate starts a fresh one for the next event.
async function crash(error, errorType, label, exitCode) {
  const b = errorBody(error);
  if (errorType) b.errorType = errorType;
  const inv = current;
  current = null;
  printError(inv && inv.requestId, label, b);
  try {
    if (client && phase === 'init') await client.postInitError(b, b.errorType);
    else if (client && inv) await client.postError(inv.requestId, b, 'Unhandled');
  } catch (_) {
    /* the process is going away anyway */
  }
  process.exit(exitCode);
}

process.on('uncaughtException', (error) => {
  crash(error, null, 'Uncaught Exception', 129);
});
process.on('unhandledRejection', (reason) => {
  const err = isError(reason) ? reason : new Error(String(reason));
  crash(err, 'Runtime.UnhandledPromiseRejection', 'Unhandled Promise Rejection', 128);
});

async function main() {
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) fatal('AWS_LAMBDA_RUNTIME_API is not set');
  client = new RuntimeClient(address);
  const taskRoot = path.resolve(process.env.LAMBDA_TASK_ROOT || process.cwd());
  // Also preloaded through NODE_OPTIONS, for the processes a handler starts; installed once.
  require(path.join(__dirname, 'execute-api.cjs'));
  if (process.env.WSGATE_NODE_SDKS) provideSdks(process.env.WSGATE_NODE_SDKS);

  let handler;
  try {
    handler = await loadHandler(taskRoot, process.env._HANDLER);
  } catch (e) {
    const b = e instanceof InitError
      ? { errorType: e.errorType, errorMessage: e.message, stackTrace: e.stackTrace }
      : Object.assign(errorBody(e), { errorType: 'Runtime.ImportModuleError' });
    printError(undefined, 'Uncaught Exception', b);
    try {
      await client.postInitError(b, b.errorType);
    } catch (apiErr) {
      logStderr(`[wsgate bootstrap] could not post init error: ${apiErr.message}`);
    }
    process.exit(1);
  }
  phase = 'invoke';

  for (;;) {
    let next;
    try {
      next = await client.nextInvocation();
    } catch (e) {
      fatal(`Runtime API unreachable: ${e.message}`);
    }
    if (next.status === 410) {
      // wsgate answers 410 Gone when it is replacing or stopping this process.
      logStderr('[wsgate bootstrap] the Runtime API asked this process to stop (410 Gone)');
      process.exit(0);
    }
    if (next.status !== 200) {
      fatal(`unexpected answer ${next.status} from GET /runtime/invocation/next: ${next.body.toString('utf8', 0, 500)}`);
    }
    if (!next.headers['lambda-runtime-aws-request-id']) {
      fatal('GET /runtime/invocation/next answered without a Lambda-Runtime-Aws-Request-Id header');
    }
    await handleInvocation(client, handler, next.headers, next.body);
  }
}

main().catch((e) => fatal(`internal error: ${(e && e.stack) || e}`));
