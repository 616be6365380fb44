// A real browser against a JWT-protected wsgate over wss.
//
// Debian's headless Chromium, driven through playwright-core over CDP, opens
// `new WebSocket("wss://127.0.0.1:PORT/dev", ["chat", token])` from a page served on
// 127.0.0.1: the handshake succeeds, the gateway echoes the `chat` subprotocol, and a `whoami`
// mock answers the token's `sub`. A forged token, an expired token and a page of an origin that
// is not allowed are refused before the socket opens (close code 1006, and Chromium's console names
// the status); a Node-side handshake with the same headers shows the status the gateway answered
// (401, 401, 403).
//
// Everything is generated here: an EC P-256 key pair and its JWKS, ES256 tokens signed with
// node:crypto, a self-signed certificate for 127.0.0.1 (openssl CLI), the config. Every process
// started here (wsgate, Chromium) is stopped by its PID in `after`, whatever happened.
//
//   WSGATE_BIN    the gateway binary (default: target/release/wsgate of this repository)
//   CHROMIUM_BIN  the browser (default: /usr/bin/chromium)
//
// Run: node --test browser/   (or browser/run.sh, which installs what is missing)

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { ECHO_DEFAULT, launchChromium, launchGateway, tearDown, withTimeout } from "./support.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..");
const WSGATE_BIN = process.env.WSGATE_BIN || path.join(REPO, "target", "release", "wsgate");
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const ISSUER = "https://issuer.wsgate.test/";
const AUDIENCE = "wsgate-browser-test";
const SUB = "alice-42";
const STEP_MS = 8000; // the longest any single step may take

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** An ES256 compact JWS of `claims`, signed with `privateKey`, header naming `kid`. */
function signJwt(claims, privateKey, kid) {
  const header = b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid }));
  const payload = b64url(JSON.stringify(claims));
  const signature = crypto.sign("sha256", Buffer.from(`${header}.${payload}`), {
    key: privateKey,
    dsaEncoding: "ieee-p1363", // JWS wants r||s, not DER
  });
  return `${header}.${payload}.${b64url(signature)}`;
}

/**
 * A WebSocket handshake from Node with chosen headers, trusting only our certificate: the status
 * the gateway answered (101 when it upgraded) and the subprotocol it chose.
 */
function handshake(port, ca, headers) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = https.request({
        host: "127.0.0.1",
        port,
        path: "/dev",
        method: "GET",
        ca,
        agent: false,
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": crypto.randomBytes(16).toString("base64"),
          ...headers,
        },
      });
      req.on("upgrade", (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode, protocol: res.headers["sec-websocket-protocol"] });
      });
      req.on("response", (res) => {
        res.resume();
        resolve({ status: res.statusCode, protocol: res.headers["sec-websocket-protocol"] });
      });
      req.on("error", reject);
      req.end();
    }),
    STEP_MS,
    "node handshake",
  );
}

// The page: `window.attempt(url, protocols)` opens a socket and reports what happened; when it
// opens, it asks `whoami` and sends one message to the `$default` echo.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>wsgate browser test</title></head><body>
<script>
window.attempt = (url, protocols, timeoutMs) => new Promise((resolve) => {
  const result = { opened: false, protocol: null, messages: [], closeCode: null, error: false };
  let ws;
  const finish = () => { clearTimeout(timer); resolve(result); };
  const timer = setTimeout(() => { result.timedOut = true; try { ws.close(); } catch (e) {} finish(); }, timeoutMs);
  try {
    ws = new WebSocket(url, protocols);
  } catch (e) {
    result.thrown = String(e);
    return finish();
  }
  ws.onerror = () => { result.error = true; };
  ws.onopen = () => {
    result.opened = true;
    result.protocol = ws.protocol;
    ws.send(JSON.stringify({ action: "whoami" }));
  };
  ws.onmessage = (m) => {
    result.messages.push(m.data);
    if (result.messages.length === 1) ws.send(JSON.stringify({ action: "echo-me", n: 7 }));
    else ws.close(1000, "done");
  };
  ws.onclose = (e) => { result.closeCode = e.code; finish(); };
});
</script></body></html>`;

function servePage() {
  return new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
      res.end(PAGE);
    });
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

describe("a browser over wss with a JWT in the subprotocol", { timeout: 60_000 }, () => {
  const s = {}; // state shared by the tests
  let tmp;
  let gateway;
  let chrome;
  let browser;
  const servers = [];
  const gatewayLog = [];
  const consoleLines = [];

  before(async () => {
    for (const [what, file] of [["wsgate binary (WSGATE_BIN)", WSGATE_BIN], ["chromium (CHROMIUM_BIN)", CHROMIUM_BIN]]) {
      try {
        fs.accessSync(file, fs.constants.X_OK);
      } catch {
        throw new Error(`${what} not found or not executable at ${file}`);
      }
    }
    const openssl = spawnSync("openssl", ["version"], { encoding: "utf8" });
    if (openssl.error || openssl.status !== 0) {
      throw new Error("the openssl CLI is needed to make the test certificate and was not found");
    }

    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsgate-browser-"));

    // Signing keys: the trusted one (published in the JWKS) and another one (for the forgery).
    const kid = "test-key-1";
    const trusted = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const other = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwk = { ...trusted.publicKey.export({ format: "jwk" }), kid, alg: "ES256", use: "sig" };
    fs.writeFileSync(path.join(tmp, "jwks.json"), JSON.stringify({ keys: [jwk] }));
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: ISSUER, aud: AUDIENCE, sub: SUB, iat: now, exp: now + 600, tier: 3 };
    s.token = signJwt(claims, trusted.privateKey, kid);
    s.forged = signJwt(claims, other.privateKey, kid); // same kid, another key
    // Well past the default 60 s leeway.
    s.expired = signJwt({ ...claims, iat: now - 7200, exp: now - 3600 }, trusted.privateKey, kid);

    // A self-signed certificate for 127.0.0.1 and localhost.
    const cert = path.join(tmp, "cert.pem");
    const key = path.join(tmp, "key.pem");
    const made = spawnSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
      { encoding: "utf8", timeout: STEP_MS },
    );
    assert.equal(made.status, 0, `openssl req failed: ${made.stderr}`);
    s.ca = fs.readFileSync(cert);
    const spki = new crypto.X509Certificate(s.ca).publicKey.export({ type: "spki", format: "der" });
    s.spkiHash = crypto.createHash("sha256").update(spki).digest("base64");

    // Two page servers: one origin is allowed, the other is not.
    const allowed = await servePage();
    const denied = await servePage();
    servers.push(allowed, denied);
    s.allowedOrigin = `http://127.0.0.1:${allowed.address().port}`;
    s.deniedOrigin = `http://127.0.0.1:${denied.address().port}`;

    const configPath = path.join(tmp, "wsgate.toml");
    fs.writeFileSync(
      configPath,
      `[gateway]
listen = "127.0.0.1:0"
stage = "dev"
allowed_origins = [${JSON.stringify(s.allowedOrigin)}]

[gateway.tls]
cert = "cert.pem"
key = "key.pem"

[authorizers.users]
type = "jwt"
jwks_file = "jwks.json"
issuer = ${JSON.stringify(ISSUER)}
audience = ${JSON.stringify(AUDIENCE)}

[routes."$connect"]
authorizer = "users"

[routes.whoami]
type = "mock"
body = '\${context.authorizer.principalId}'
route_response = true

${ECHO_DEFAULT}`,
    );

    const launched = launchGateway(WSGATE_BIN, configPath, tmp, gatewayLog, STEP_MS);
    gateway = launched.child;
    s.port = await launched.port;

    // Chromium, started by us (so we own its PID), with a fresh profile; playwright drives it over CDP.
    const chromeLog = [];
    s.chromeLog = chromeLog;
    const started = launchChromium(CHROMIUM_BIN, tmp, [`--ignore-certificate-errors-spki-list=${s.spkiHash}`], chromeLog);
    chrome = started.child;
    const devtools = await started.devtools;
    browser = await withTimeout(chromium.connectOverCDP(devtools), STEP_MS, "connectOverCDP");
    s.context = browser.contexts()[0] ?? (await browser.newContext());
  });

  after(() => tearDown({ browser, chrome, gateway, servers, tmp }));

  /**
   * Opens the page of `origin` and runs `attempt` in it; `result.console` holds what the browser
   * logged meanwhile (Chromium names the handshake's failure there). With `expectLog`, waits up
   * to a second for a matching line, as console events may trail the close event.
   */
  async function attemptFrom(origin, protocols, expectLog) {
    const page = await s.context.newPage();
    const lines = [];
    page.on("console", (m) => {
      lines.push(m.text());
      consoleLines.push(m.text());
    });
    try {
      await page.goto(`${origin}/`, { timeout: STEP_MS });
      const result = await page.evaluate(
        ([url, protocols, ms]) => window.attempt(url, protocols, ms),
        [`wss://127.0.0.1:${s.port}/dev`, protocols, STEP_MS - 1000],
      );
      for (let i = 0; expectLog && i < 20 && !lines.some((l) => expectLog.test(l)); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      result.console = lines;
      return result;
    } finally {
      await page.close();
    }
  }

  /** How Chromium reports a handshake answered with `status`. */
  const failedWith = (status) =>
    status === 401
      ? /failed: (HTTP Authentication failed|.*Unexpected response code: 401)/
      : new RegExp(`failed: .*Unexpected response code: ${status}`);

  const diagnostics = () => `\n--- wsgate stderr (tail) ---\n${gatewayLog.join("").slice(-4000)}\n--- browser console ---\n${consoleLines.join("\n")}`;

  test("the valid token in the subprotocol connects; the gateway echoes `chat`; whoami is the sub", async () => {
    const result = await attemptFrom(s.allowedOrigin, ["chat", s.token]);
    assert.equal(result.opened, true, `did not open: ${JSON.stringify(result)}${diagnostics()}`);
    assert.equal(result.protocol, "chat");
    assert.equal(result.messages[0], SUB);
    assert.deepEqual(JSON.parse(result.messages[1]), { action: "echo-me", n: 7 });
    assert.equal(result.closeCode, 1000);

    // The same from Node: 101 and `chat`.
    const answer = await handshake(s.port, s.ca, {
      Origin: s.allowedOrigin,
      "Sec-WebSocket-Protocol": `chat, ${s.token}`,
    });
    assert.deepEqual(answer, { status: 101, protocol: "chat" });
  });

  test("a token offered alone is echoed as the subprotocol", async () => {
    const result = await attemptFrom(s.allowedOrigin, [s.token]);
    assert.equal(result.opened, true, `did not open: ${JSON.stringify(result)}${diagnostics()}`);
    assert.equal(result.protocol, s.token);
    assert.equal(result.messages[0], SUB);
  });

  for (const [name, pick] of [
    ["a forged", () => s.forged],
    ["an expired", () => s.expired],
  ]) {
    test(`${name} token is refused: the socket never opens (1006), the gateway answered 401`, async () => {
      const token = pick();
      const result = await attemptFrom(s.allowedOrigin, ["chat", token], failedWith(401));
      assert.equal(result.opened, false, `opened: ${JSON.stringify(result)}`);
      assert.equal(result.error, true);
      assert.equal(result.closeCode, 1006);
      assert.ok(result.console.some((l) => failedWith(401).test(l)), `browser console: ${JSON.stringify(result.console)}`);
      const answer = await handshake(s.port, s.ca, {
        Origin: s.allowedOrigin,
        "Sec-WebSocket-Protocol": `chat, ${token}`,
      });
      assert.equal(answer.status, 401, diagnostics());
    });
  }

  test("no token at all is refused with 401", async () => {
    const result = await attemptFrom(s.allowedOrigin, ["chat"], failedWith(401));
    assert.equal(result.opened, false);
    assert.equal(result.closeCode, 1006);
    assert.ok(result.console.some((l) => failedWith(401).test(l)), `browser console: ${JSON.stringify(result.console)}`);
    const answer = await handshake(s.port, s.ca, { Origin: s.allowedOrigin, "Sec-WebSocket-Protocol": "chat" });
    assert.equal(answer.status, 401);
  });

  test("a page of an origin that is not allowed is refused, even with a valid token (403)", async () => {
    const result = await attemptFrom(s.deniedOrigin, ["chat", s.token], failedWith(403));
    assert.equal(result.opened, false, `opened: ${JSON.stringify(result)}`);
    assert.equal(result.closeCode, 1006);
    assert.ok(result.console.some((l) => failedWith(403).test(l)), `browser console: ${JSON.stringify(result.console)}`);
    const answer = await handshake(s.port, s.ca, {
      Origin: s.deniedOrigin,
      "Sec-WebSocket-Protocol": `chat, ${s.token}`,
    });
    assert.equal(answer.status, 403);
  });
});
