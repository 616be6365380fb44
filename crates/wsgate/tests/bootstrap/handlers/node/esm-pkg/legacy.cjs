// CommonJS (.cjs) inside a "type": "module" package.
module.exports.handler = (event, context, callback) => callback(null, { cjs: true, body: event.body });
