// A real browser attacking an unauthenticated management API (`auth = "none"`, the default).
//
// Debian's headless Chromium, driven through playwright-core, with `--host-resolver-rules` so
// that `evil.example` and `rebind.example` resolve to 127.0.0.1 as an attacker's DNS would make
// them:
// - a page of http://evil.example:PORT sends `fetch(".../@broadcast", {method: "POST",
//   mode: "no-cors"})` to the gateway: the browser sends it (the answer is opaque, the request
//   is not), and a client of the gateway must not receive it;
// - a page of http://rebind.example:GWPORT (DNS rebinding: the attacker's name now points at
//   the gateway) reads `/dev/@connections` same-origin: it must get 403, not the list;
// - a page served from this machine (http://127.0.0.1:PORT) may still broadcast, and a client
//   of the gateway receives it.
//
// Every process started here (wsgate, Chromium) is stopped by its process group in `after`.
//
//   WSGATE_BIN    the gateway binary (default: target/release/wsgate of this repository)
//   CHROMIUM_BIN  the browser (default: /usr/bin/chromium)

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { ECHO_DEFAULT, launchChromium, startGateway, tearDown, withTimeout } from "./support.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..");
const WSGATE_BIN = process.env.WSGATE_BIN || path.join(REPO, "target", "release", "wsgate");
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const STEP_MS = 8000;

describe("a web page against an unauthenticated management API", { timeout: 60_000 }, () => {
  let tmp, gateway, chrome, browser, server, context;
  let gwPort, pagePort;
  const gatewayLog = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsgate-browser-mgmt-"));
    const served = await startGateway(
      WSGATE_BIN,
      tmp,
      `[gateway]
listen = "127.0.0.1:0"
stage = "dev"

${ECHO_DEFAULT}`,
      gatewayLog,
      STEP_MS,
    );
    gateway = served.child;
    gwPort = served.port;

    // The pages: an empty document on every name; each test runs its script in it.
    server = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>page</title>");
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    pagePort = server.address().port;

    const started = launchChromium(
      CHROMIUM_BIN,
      tmp,
      ["--host-resolver-rules=MAP evil.example 127.0.0.1, MAP rebind.example 127.0.0.1"],
      [],
    );
    chrome = started.child;
    const devtools = await started.devtools;
    browser = await withTimeout(chromium.connectOverCDP(devtools), STEP_MS, "connectOverCDP");
    context = browser.contexts()[0] ?? (await browser.newContext());
  });

  after(() => tearDown({ browser, chrome, gateway, servers: [server], tmp }));

  /** A page of this machine holding a WebSocket to the gateway; `window.got` collects messages. */
  async function listener() {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${pagePort}/listener`);
    await page.evaluate(
      (url) =>
        new Promise((resolve, reject) => {
          window.got = [];
          const ws = new WebSocket(url);
          ws.onmessage = (e) => window.got.push(e.data);
          ws.onopen = () => resolve();
          ws.onerror = () => reject(new Error("the listener could not connect"));
        }),
      `ws://127.0.0.1:${gwPort}/dev`,
    );
    return page;
  }

  /** Opens `origin` and sends a no-cors POST of `text` to @broadcast from it. */
  async function broadcastFrom(origin, text) {
    const page = await context.newPage();
    await page.goto(`${origin}/attack`);
    await page.evaluate(
      ({ url, text }) => fetch(url, { method: "POST", mode: "no-cors", body: text }).then(() => true),
      { url: `http://127.0.0.1:${gwPort}/dev/@broadcast`, text },
    );
    await page.close();
  }

  test("a page of another site cannot broadcast; a page of this machine can", async () => {
    const page = await listener();
    await broadcastFrom(`http://evil.example:${pagePort}`, "from evil.example");
    await broadcastFrom(`http://127.0.0.1:${pagePort}`, "from this machine");
    await withTimeout(
      page.waitForFunction(() => window.got.includes("from this machine")),
      STEP_MS,
      "the allowed broadcast",
    );
    // Give the refused one as long again to show up; it must not.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const got = await page.evaluate(() => window.got);
    assert.deepEqual(got, ["from this machine"], `the client received ${JSON.stringify(got)}`);
    await page.close();
  });

  test("a rebound DNS name cannot read the connection list", async () => {
    const holder = await listener();
    const page = await context.newPage();
    // The attacker's name now points at the gateway: the page and the API are same-origin.
    await page.goto(`http://rebind.example:${gwPort}/dev/@openapi.json`);
    const answer = await page.evaluate(() =>
      fetch("/dev/@connections").then(async (r) => ({ status: r.status, body: await r.text() })),
    );
    assert.equal(answer.status, 403, answer.body);
    assert.doesNotMatch(answer.body, /connectionId/);
    // The same read from the gateway's own address is answered.
    await page.goto(`http://127.0.0.1:${gwPort}/dev/@openapi.json`);
    const own = await page.evaluate(() => fetch("/dev/@connections").then((r) => r.status));
    assert.equal(own, 200);
    await page.close();
    await holder.close();
  });
});
