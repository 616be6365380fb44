// CommonJS fixture handlers for the Node bootstrap tests (run unchanged, as on AWS Lambda).
'use strict';

let counter = 0;

exports.echo = async (event) => ({ statusCode: 200, body: event.body });

exports.ctx = async (event, context) => {
  const first = context.getRemainingTimeInMillis();
  await new Promise((r) => setTimeout(r, 50));
  const second = context.getRemainingTimeInMillis();
  return {
    awsRequestId: context.awsRequestId,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
    hasLegacy: [typeof context.succeed, typeof context.fail, typeof context.done],
    remainingFirst: first,
    remainingSecond: second,
    traceId: process.env._X_AMZN_TRACE_ID || null,
    cwd: process.cwd(),
  };
};

exports.count = async () => {
  counter += 1;
  return { count: counter, pid: process.pid };
};

exports.maybeFail = async (event) => {
  if (event.fail) {
    const e = new TypeError(`boom: ${event.fail}`);
    throw e;
  }
  return { ok: true };
};

exports.syncThrow = (event) => {
  throw new RangeError('sync boom');
};

exports.syncValue = (event) => ({ sync: true, body: event.body });

exports.syncUndefined = (event) => {
  console.log('sync handler returning undefined');
};

exports.callback = function (event, context, callback) {
  setTimeout(() => callback(null, { viaCallback: true, body: event.body, count: ++counter }), 20);
};

exports.callbackError = function (event, context, callback) {
  setTimeout(() => callback(new Error('callback failure')), 5);
};

// The callback is called at once, but a timer is still pending: Lambda waits for the
// event loop to be empty before answering, unless callbackWaitsForEmptyEventLoop is false.
exports.callbackWaits = function (event, context, callback) {
  context.callbackWaitsForEmptyEventLoop = event.waits !== false;
  globalThis.timerFired = false;
  setTimeout(() => {
    globalThis.timerFired = true;
  }, 300);
  callback(null, { startedAt: Date.now() });
};

exports.legacySucceed = function (event, context) {
  setTimeout(() => context.succeed({ legacy: 'succeed' }), 10);
};

exports.legacyDone = function (event, context) {
  setTimeout(() => context.done(new Error('done with error')), 10);
};

exports.bigint = async () => ({ n: 10n });

exports.undefinedResult = async () => undefined;

exports.unhandledRejection = async () => {
  Promise.reject(new Error('nobody catches me'));
  await new Promise((r) => setTimeout(r, 1000));
  return { unreachable: true };
};

exports.logs = async () => {
  console.log('stdout line from handler');
  console.error('stderr line from handler');
  return null;
};

exports.handlers = {
  connect: async (event) => ({ statusCode: 200, body: 'nested:' + event.body }),
};

exports.identity = async (event, context) => ({ identity: context.identity, clientContext: context.clientContext });

exports.notAFunction = 42;
