// The web console (`GET /@console`) in a real browser, against the real gateway, under each
// management auth:
// - `auth = "token"`: the page asks for a token (a wrong one is refused and asked for again),
//   then lists a live connection held by another page's WebSocket, sends it a message through
//   the console's form, and closes it with 4001 "kicked", which the client sees;
// - `auth = "none"`: the page opens without asking, and its same-origin calls pass the
//   cross-site checks (a broadcast from its form reaches a client);
// - `auth = "sigv4"`: the first call is refused with 403 and the page explains that the
//   console needs a bearer token.
// No test may leave an uncaught error in the page, nor a console error other than the
// browser's own line for a refused request.
//
// Every process started here (wsgate, Chromium) is stopped by its process group.
//
//   WSGATE_BIN    the gateway binary (default: target/release/wsgate of this repository)
//   CHROMIUM_BIN  the browser (default: /usr/bin/chromium)

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { ECHO_DEFAULT, launchChromium, launchGateway, stopGroup, tearDown, withTimeout } from "./support.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..");
const WSGATE_BIN = process.env.WSGATE_BIN || path.join(REPO, "target", "release", "wsgate");
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const STEP_MS = 10_000;
const TOKEN = "console-test-token-0123456789";

/** A config with `management` as its [management] tables, the echo route and `whoami`. */
const config = (management) => `[gateway]
listen = "127.0.0.1:0"
stage = "dev"
route_selection_expression = "$request.body.action"

[management]
${management}

[routes.whoami]
type = "mock"
body = '\${context.connectionId}'
route_response = true

${ECHO_DEFAULT}`;

describe("the web console", { timeout: 60_000 }, () => {
  let tmp, chrome, browser, context;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsgate-browser-console-"));
    const started = launchChromium(CHROMIUM_BIN, tmp, [], []);
    chrome = started.child;
    browser = await withTimeout(chromium.connectOverCDP(await started.devtools), STEP_MS, "connectOverCDP");
    context = browser.contexts()[0] ?? (await browser.newContext());
  });

  after(() => tearDown({ browser, chrome, tmp }));

  /** Runs `body` with a gateway on `management`, stopped afterwards whatever happens. */
  async function withGateway(name, management, body) {
    const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
    const configPath = path.join(dir, "wsgate.toml");
    fs.writeFileSync(configPath, config(management));
    const log = [];
    // The child is held at once, so that it is stopped even when it never says it listens.
    const launched = launchGateway(WSGATE_BIN, configPath, dir, log, STEP_MS);
    try {
      await body(await launched.port);
    } catch (e) {
      e.message += `\n--- wsgate log ---\n${log.join("").slice(-4000)}`;
      throw e;
    } finally {
      await stopGroup(launched.child, "wsgate");
    }
  }

  /** The console's page, with what it reports as errors collected in `problems`. */
  async function openConsole(url) {
    const page = await context.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
    page.on("console", (m) => {
      // Chromium's own line for a refused request (the 401 that asks for a token, the 403
      // under sigv4) is the browser's, not the page's.
      if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(m.text());
    });
    await page.goto(url);
    return { page, problems };
  }

  /**
   * A page holding a WebSocket to the gateway: `window.got` collects its messages,
   * `window.closedWith` its close event; resolves with the page and its connection id.
   */
  async function client(port) {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${port}/healthz`);
    const id = await page.evaluate(
      (url) =>
        new Promise((resolve, reject) => {
          window.got = [];
          window.closedWith = null;
          const ws = new WebSocket(url);
          // The first message is the answer to `whoami`: the connection's id.
          ws.onmessage = (e) => {
            if (window.id === undefined) resolve((window.id = e.data));
            else window.got.push(e.data);
          };
          ws.onclose = (e) => (window.closedWith = { code: e.code, reason: e.reason });
          ws.onopen = () => ws.send(JSON.stringify({ action: "whoami" }));
          ws.onerror = () => reject(new Error("the client could not connect"));
        }),
      `ws://127.0.0.1:${port}/dev`,
    );
    return { page, id };
  }

  const visible = (page, selector) => withTimeout(page.waitForSelector(selector, { state: "visible" }), STEP_MS, selector);

  test("with a token: asks for it, lists a connection, sends to it and closes it with a code and reason", async () => {
    await withGateway(
      "token",
      `auth = "token"
[[management.tokens]]
name = "console"
token = "${TOKEN}"`,
      async (port) => {
        const holder = await client(port);
        const { page, problems } = await openConsole(`http://127.0.0.1:${port}/dev/@console`);

        await visible(page, "#login");
        assert.equal(await page.isHidden("#app"), true, "the console shows no data before the token");

        // A wrong token is refused, and the page asks again.
        await page.fill("#token", "not-the-token-0123456789");
        await page.click("#login-form button[type=submit]");
        await withTimeout(page.waitForFunction(() => /refused/.test(document.getElementById("login-error").textContent)), STEP_MS, "the refusal");
        assert.equal(await page.isVisible("#login"), true);

        await page.fill("#token", TOKEN);
        await page.click("#login-form button[type=submit]");
        await visible(page, "#app");
        assert.equal(await page.evaluate(() => sessionStorage.getItem("wsgate.console.token")), TOKEN);
        assert.doesNotMatch(page.url(), new RegExp(TOKEN));
        assert.match(await page.textContent("#meta"), /auth token/);

        // The client's connection is listed; picking it shows its details.
        await withTimeout(
          page.waitForFunction((id) => [...document.querySelectorAll("#conn-rows tr")].some((r) => r.dataset.id === id), holder.id),
          STEP_MS,
          "the connection in the list",
        );
        await page.evaluate((id) => [...document.querySelectorAll("#conn-rows tr")].find((r) => r.dataset.id === id).click(), holder.id);
        await withTimeout(page.waitForFunction(() => /Source IP/.test(document.getElementById("detail-fields").textContent)), STEP_MS, "the details");
        assert.equal(await page.textContent("#detail-id"), holder.id);
        assert.match(await page.textContent("#detail-fields"), /127\.0\.0\.1/);

        // Send through the form: picking the connection made it the recipient.
        assert.equal(await page.inputValue("#send-kind"), "connection");
        await page.fill("#send-body", "hello from the console");
        await page.click("#send-form button[type=submit]");
        await withTimeout(page.waitForFunction(() => document.getElementById("send-result").textContent === "Sent."), STEP_MS, "the send");
        await withTimeout(holder.page.waitForFunction(() => window.got.includes("hello from the console")), STEP_MS, "the message at the client");

        // A code the page knows the gateway refuses is not sent.
        await page.fill("#close-code", "2000");
        await page.click("#close-form button[type=submit]");
        assert.match(await page.textContent("#close-result"), /1000, or 3000 to 4999/);
        assert.equal(await holder.page.evaluate(() => window.closedWith), null);

        await page.fill("#close-code", "4001");
        await page.fill("#close-reason", "kicked");
        await page.click("#close-form button[type=submit]");
        await withTimeout(page.waitForFunction(() => /^Closed with 4001/.test(document.getElementById("close-result").textContent)), STEP_MS, "the close");
        await withTimeout(holder.page.waitForFunction(() => window.closedWith !== null), STEP_MS, "the close at the client");
        assert.deepEqual(await holder.page.evaluate(() => window.closedWith), { code: 4001, reason: "kicked" });

        assert.deepEqual(problems, []);
        await page.close();
        await holder.page.close();
      },
    );
  });

  test("with auth = none: opens without asking, and its calls pass as same-origin", async () => {
    await withGateway("none", `auth = "none"`, async (port) => {
      const holder = await client(port);
      const { page, problems } = await openConsole(`http://127.0.0.1:${port}/@console`);
      await visible(page, "#app");
      assert.equal(await page.isHidden("#login"), true);
      assert.match(await page.textContent("#meta"), /auth none/);
      await withTimeout(
        page.waitForFunction((id) => [...document.querySelectorAll("#conn-rows tr")].some((r) => r.dataset.id === id), holder.id),
        STEP_MS,
        "the connection in the list",
      );
      // A POST from the page carries its Origin: it must pass the cross-site check.
      await page.selectOption("#send-kind", "all");
      await page.fill("#send-body", "to everyone");
      await page.click("#send-form button[type=submit]");
      await withTimeout(page.waitForFunction(() => /^Sent to 1 connection\b/.test(document.getElementById("send-result").textContent)), STEP_MS, "the broadcast");
      await withTimeout(holder.page.waitForFunction(() => window.got.includes("to everyone")), STEP_MS, "the broadcast at the client");
      // The routes are listed with their integrations.
      assert.match(await page.textContent("#routes"), /whoami/);
      assert.match(await page.textContent("#routes"), /echoes the message/);
      assert.deepEqual(problems, []);
      await page.close();
      await holder.page.close();
    });
  });

  test("with auth = sigv4: explains that the console needs a bearer token", async () => {
    await withGateway(
      "sigv4",
      `auth = "sigv4"
[[management.credentials]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"`,
      async (port) => {
        const { page, problems } = await openConsole(`http://127.0.0.1:${port}/@console`);
        await visible(page, "#denied");
        assert.equal(await page.isHidden("#app"), true);
        assert.equal(await page.isHidden("#login"), true);
        const text = await page.textContent("#denied");
        assert.match(text, /403/);
        assert.match(text, /auth = "token"/);
        assert.deepEqual(problems, []);
        await page.close();
      },
    );
  });
});
