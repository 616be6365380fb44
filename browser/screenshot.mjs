// Takes docs/console.png: the web console at 1280x800 with live traffic. Runnable by hand:
//
//   cargo build --release -p wsgate
//   cd browser && npm ci && node screenshot.mjs [out.png] [seconds of traffic first, default 60]
//
// It starts the release gateway (or $WSGATE_BIN) on 127.0.0.1:0 with a bearer token, a
// `$connect` HTTP backend (a small server here that puts each client in a group and names its
// user), a Node function, an HTTP route, and a route whose backend does not listen (the recent
// errors); seven browser WebSockets send messages at a varying rate; then the console (Debian's
// headless Chromium, $CHROMIUM_BIN) is opened, signed in, sends to a group, and the page is shot.
// Everything it starts is stopped by its process group, and its folder removed.

import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { ECHO_DEFAULT, launchChromium, launchGateway, tearDown, withTimeout } from "./support.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..");
const WSGATE_BIN = process.env.WSGATE_BIN || path.join(REPO, "target", "release", "wsgate");
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const OUT = path.resolve(process.argv[2] || path.join(REPO, "docs", "console.png"));
const SECONDS = Number(process.argv[3] || 60);
const TOKEN = "console-screenshot-token-0123456789";
const CLIENTS = [
  ["alice", "lobby"], ["bob", "lobby"], ["carol", "ops"], ["dave", "lobby"],
  ["erin", "ops"], ["frank", "lobby"], ["alice", "ops"],
];

/** The `$connect` and `orders` backend: a Lambda-proxy answer for the event it is posted. */
function backend() {
  return http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const event = JSON.parse(body || "{}");
      const q = event.queryStringParameters || {};
      const answer = req.url === "/connect"
        ? { statusCode: 200, wsgate: { join: [q.room], user: q.name } }
        : { statusCode: 200, body: JSON.stringify({ ok: true }) };
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(answer));
      }, 5 + Math.random() * 20);
    });
  });
}

const config = (backendPort) => `[gateway]
listen = "127.0.0.1:0"
stage = "dev"
route_selection_expression = "$request.body.action"

[management]
auth = "token"
[[management.tokens]]
name = "console"
token = "${TOKEN}"

[functions.chat]
runtime = "node"
handler = "app.handler"
dir = "fn"
max_concurrency = 4

[routes."$connect"]
type = "http"
url = "http://127.0.0.1:${backendPort}/connect"

[routes.sendmessage]
type = "function"
function = "chat"
route_response = true

[routes.orders]
type = "http"
url = "http://127.0.0.1:${backendPort}/orders"
timeout = "2s"

[routes.report]
type = "http"
url = "http://127.0.0.1:1/report"

${ECHO_DEFAULT}`;

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsgate-console-shot-"));
  const started = {};
  try {
    fs.mkdirSync(path.join(tmp, "fn"));
    fs.writeFileSync(
      path.join(tmp, "fn", "app.js"),
      "exports.handler = async (event) => ({ statusCode: 200, body: JSON.stringify({ got: JSON.parse(event.body).text }) });\n",
    );
    started.server = backend();
    await new Promise((resolve) => started.server.listen(0, "127.0.0.1", resolve));
    const configPath = path.join(tmp, "wsgate.toml");
    fs.writeFileSync(configPath, config(started.server.address().port));
    const log = [];
    // The child is held at once, so that it is stopped even when it never says it listens.
    const launched = launchGateway(WSGATE_BIN, configPath, tmp, log, 10_000);
    started.gateway = launched.child;
    const gateway = {
      port: await launched.port.catch((e) => {
        throw new Error(`${e.message}\n${log.join("")}`);
      }),
    };

    const chrome = launchChromium(CHROMIUM_BIN, tmp, [], []);
    started.chrome = chrome.child;
    started.browser = await withTimeout(chromium.connectOverCDP(await chrome.devtools), 10_000, "connectOverCDP");
    const context = started.browser.contexts()[0] ?? (await started.browser.newContext());

    // The clients: a page of sockets, each sending now and then, faster and slower in waves.
    const traffic = await context.newPage();
    await traffic.goto(`http://127.0.0.1:${gateway.port}/healthz`);
    await traffic.evaluate(
      ({ base, clients }) => {
        const actions = ["sendmessage", "sendmessage", "orders", "ping"];
        const t0 = Date.now();
        for (const [name, room] of clients) {
          const ws = new WebSocket(`${base}?name=${name}&room=${room}`);
          const tick = () => {
            if (ws.readyState !== WebSocket.OPEN) return;
            const action = Math.random() < 0.015 ? "report" : actions[Math.floor(Math.random() * actions.length)];
            ws.send(JSON.stringify({ action, text: `hello from ${name}` }));
            const wave = 1.6 + Math.sin((Date.now() - t0) / 9000);
            setTimeout(tick, 150 + Math.random() * 500 / wave);
          };
          ws.onopen = tick;
        }
      },
      { base: `ws://127.0.0.1:${gateway.port}/dev`, clients: CLIENTS },
    );

    const page = await context.newPage();
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`http://127.0.0.1:${gateway.port}/@console`);
    await page.fill("#token", TOKEN);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("#conn-rows tr[data-id]");
    console.error(`traffic for ${SECONDS} s...`);
    await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
    // Send a message to the lobby group; with no connection picked, the routes show at the side.
    await page.selectOption("#send-kind", "group");
    await page.fill("#send-target", "lobby");
    await page.fill("#send-body", '{"type": "notice", "text": "maintenance at 18:00"}');
    await page.click("#send-form button[type=submit]");
    await page.waitForFunction(() => /^Sent to/.test(document.getElementById("send-result").textContent));
    await page.evaluate(() => {
      document.activeElement?.blur();
      window.scrollTo(0, 0);
    });
    await page.mouse.move(0, 0);
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    await page.screenshot({ path: OUT });
    if (process.env.FULL_PAGE) await page.screenshot({ path: process.env.FULL_PAGE, fullPage: true });
    console.error(`wrote ${OUT}`);
  } finally {
    await tearDown({ browser: started.browser, chrome: started.chrome, gateway: started.gateway, servers: [started.server], tmp });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
