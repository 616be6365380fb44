// ES module fixture handlers.
let counter = 0;

export const echo = async (event) => ({ statusCode: 200, body: event.body });

export async function count() {
  counter += 1;
  return { count: counter, pid: process.pid, esm: typeof require === 'undefined' };
}

export async function ctx(event, context) {
  return { awsRequestId: context.awsRequestId, functionName: context.functionName, remaining: context.getRemainingTimeInMillis() };
}

export const maybeFail = async (event) => {
  if (event.fail) throw new Error(`esm boom: ${event.fail}`);
  return { ok: true };
};
