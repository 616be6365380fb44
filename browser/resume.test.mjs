// The JavaScript client of resumable connections (clients/js/wsgate-reliable.mjs) in a real
// browser, through a real network drop.
//
// Debian's headless Chromium, driven through playwright-core over CDP, loads a page that imports
// the module and opens a ReliableConnection to the gateway through a TCP relay of this test. The
// relay is then cut — every socket through it destroyed, new ones refused — while the backend
// posts to the connection, and restored: the client reconnects on its own, resumes, and the page
// holds every message once and in order. The backend (a stub of this test) saw one `$connect` and
// no `$disconnect`. Every process started here is stopped by its PID in `after`.
//
// Run: node --test browser/   (or browser/run.sh)

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { ECHO_DEFAULT, launchChromium, startGateway, tearDown, withTimeout } from "./support.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..");
const WSGATE_BIN = process.env.WSGATE_BIN || path.join(REPO, "target", "release", "wsgate");
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const CLIENT = path.join(REPO, "clients", "js", "wsgate-reliable.mjs");
const STEP_MS = 10000;

/** A TCP relay to `target` that the test can cut (a network drop) and restore. */
function relay(target) {
  const sockets = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return {
    server,
    cut() {
      down = true;
      for (const s of sockets) s.resetAndDestroy?.() ?? s.destroy();
    },
    restore() {
      down = false;
    },
  };
}

describe("the JavaScript client in Chromium, through a network drop", { timeout: 60_000 }, () => {
  let tmp, gateway, chrome, browser, stub, link;
  let gwPort, stubPort;
  const gatewayLog = [];
  const events = { connect: 0, disconnect: 0 };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsgate-browser-resume-"));
    // The backend and the page's server in one: $connect / $disconnect are counted.
    stub = http.createServer((req, res) => {
      if (req.url === "/page") {
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<!doctype html><title>resume</title>");
      } else if (req.url === "/wsgate-reliable.mjs") {
        res.writeHead(200, { "content-type": "text/javascript" });
        res.end(fs.readFileSync(CLIENT));
      } else {
        req.resume();
        if (req.url === "/connect") events.connect += 1;
        if (req.url === "/disconnect") events.disconnect += 1;
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"statusCode": 200}');
      }
    });
    await new Promise((resolve) => stub.listen(0, "127.0.0.1", resolve));
    stubPort = stub.address().port;
    const started = await startGateway(
      WSGATE_BIN,
      tmp,
      `[gateway]
listen = "127.0.0.1:0"
stage = "dev"

[routes."$connect"]
type = "http"
url = "http://127.0.0.1:${stubPort}/connect"

[routes."$disconnect"]
type = "http"
url = "http://127.0.0.1:${stubPort}/disconnect"

${ECHO_DEFAULT}`,
      gatewayLog,
      STEP_MS,
    );
    gateway = started.child;
    gwPort = started.port;
    link = relay(gwPort);
    await new Promise((resolve) => link.server.listen(0, "127.0.0.1", resolve));

    const launched = launchChromium(CHROMIUM_BIN, tmp, [], []);
    chrome = launched.child;
    browser = await withTimeout(chromium.connectOverCDP(await launched.devtools), STEP_MS, "connectOverCDP");
  });

  after(() => tearDown({ browser, chrome, gateway, servers: [stub, link?.server], tmp }));

  async function post(id, data) {
    const url = `http://127.0.0.1:${gwPort}/dev/@connections/${encodeURIComponent(id)}`;
    const response = await fetch(url, { method: "POST", body: data });
    return response.status;
  }

  test("a dropped network: the client resumes with every message once, in order", async () => {
    const context = browser.contexts()[0] ?? (await browser.newContext());
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${stubPort}/page`);
    await page.evaluate(async (url) => {
      const { ReliableConnection } = await import("/wsgate-reliable.mjs");
      window.log = [];
      window.conn = new ReliableConnection(url, { minBackoffMs: 50, maxBackoffMs: 200 });
      for (const type of ["open", "message", "resumed", "reset", "close"]) {
        window.conn.addEventListener(type, (e) => window.log.push({ type, ...e.detail }));
      }
    }, `ws://127.0.0.1:${link.server.address().port}/dev`);
    const wait = (fn, arg, what) => withTimeout(page.waitForFunction(fn, arg), STEP_MS, what);
    await wait(() => window.log.some((e) => e.type === "open"), null, "open");
    const id = await page.evaluate(() => window.conn.connectionId);

    for (let n = 0; n < 3; n++) assert.equal(await post(id, `before ${n}`), 200);
    await wait(() => window.log.filter((e) => e.type === "message").length === 3, null, "3 messages");

    link.cut();
    for (let n = 0; n < 4; n++) assert.equal(await post(id, `away ${n}`), 200);
    link.restore();
    await wait(() => window.log.some((e) => e.type === "resumed"), null, "resumed");
    await wait(() => window.log.filter((e) => e.type === "message").length === 7, null, "7 messages");
    await page.evaluate(() => window.conn.send("after"));
    await wait(() => window.log.some((e) => e.data === "after"), null, "the echo after the resume");

    const messages = await page.evaluate(() => window.log.filter((e) => e.type === "message"));
    assert.deepEqual(
      messages.map((m) => m.data),
      ["before 0", "before 1", "before 2", "away 0", "away 1", "away 2", "away 3", "after"],
    );
    assert.deepEqual(
      messages.map((m) => m.seq),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    const resumed = await page.evaluate(() => window.log.find((e) => e.type === "resumed"));
    assert.equal(resumed.connectionId, id);
    assert.equal(events.connect, 1, "one $connect");
    assert.equal(events.disconnect, 0, "no $disconnect");
    await page.close();
  });
});
