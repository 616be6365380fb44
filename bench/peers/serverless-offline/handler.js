"use strict";

// Minimal WebSocket handlers for the wsgate benchmark peer. A route response
// (routeResponseSelectionExpression: $default in serverless.yml) sends `body` back to the
// sender.

exports.connect = async () => ({ statusCode: 200 });

exports.disconnect = async () => ({ statusCode: 200 });

// The raw message, unchanged.
exports.echo = async (event) => ({ statusCode: 200, body: event.body });

exports.whoami = async (event) => ({
  statusCode: 200,
  body: JSON.stringify({ connectionId: event.requestContext.connectionId }),
});

exports.defaultRoute = async (event) => ({ statusCode: 200, body: event.body });
