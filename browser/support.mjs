// What the browser tests share: bounded waits, reading a child's output, and stopping the
// processes a test started by their process group.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves with the first regex match on a child's stream, rejects on exit or timeout. */
export function waitForLine(child, stream, regex, ms, what) {
  return withTimeout(
    new Promise((resolve, reject) => {
      let buffered = "";
      const onData = (chunk) => {
        buffered += chunk.toString();
        const m = buffered.match(regex);
        if (m) {
          stream.off("data", onData);
          resolve(m);
        }
      };
      stream.on("data", onData);
      child.once("exit", (code, signal) =>
        reject(new Error(`${what} exited (code ${code}, signal ${signal}) before ready:\n${buffered}`)),
      );
      child.once("error", reject);
    }),
    ms,
    what,
  );
}

/** SIGTERM to the process group we started (detached: its group id is its PID), then SIGKILL. */
export async function stopGroup(child, name) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const signalGroup = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      try {
        process.kill(child.pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  // A wait that does not keep the event loop alive once the process is gone.
  const within = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      exited.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  signalGroup("SIGTERM");
  if (!(await within(5000))) {
    console.error(`${name} (pid ${child.pid}) ignored SIGTERM; SIGKILL`);
    signalGroup("SIGKILL");
    await within(2000);
  }
}

/**
 * Starts `wsgate serve --config configPath` in a process group of its own (stop it with
 * `stopGroup`); its stderr goes into `log`. `child` is there at once, so that a test can stop it
 * whatever happens next; `port` resolves with the port of its listening line.
 */
export function launchGateway(bin, configPath, cwd, log, ms) {
  const child = spawn(bin, ["serve", "--config", configPath], {
    cwd,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", WSGATE_LOG: process.env.WSGATE_LOG || "info,wsgate=debug" },
  });
  child.stderr.on("data", (d) => log.push(d.toString()));
  const port = waitForLine(
    child,
    child.stdout,
    // `ws://` then a line naming `wss://` on the same port (older builds: `wss://` at once).
    /wsgate listening on wss?:\/\/127\.0\.0\.1:(\d+)\/dev\b/,
    ms,
    "wsgate",
  ).then((listening) => {
    child.stdout.resume(); // keep draining
    return Number(listening[1]);
  });
  return { child, port };
}

/**
 * Starts headless Chromium in a process group of its own, with a fresh profile under `dir` and
 * `extraArgs`, and without the background traffic a closed network refuses; its stderr goes
 * into `log`. `child` is there at once; `devtools` resolves with the CDP address playwright
 * connects to.
 */
export function launchChromium(bin, dir, extraArgs, log) {
  const child = spawn(
    bin,
    [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-extensions",
      "--disable-dev-shm-usage",
      ...extraArgs,
      `--user-data-dir=${path.join(dir, "profile")}`,
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      "about:blank",
    ],
    { detached: true, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, http_proxy: "", https_proxy: "", HTTP_PROXY: "", HTTPS_PROXY: "" } },
  );
  child.stderr.on("data", (d) => log.push(d.toString()));
  const devtools = waitForLine(child, child.stderr, /DevTools listening on (ws:\/\/\S+)/, 20_000, "chromium").then(
    (m) => m[1],
  );
  return { child, devtools };
}

/** The `$default` route that echoes every message back, as TOML. */
export const ECHO_DEFAULT = `[routes."$default"]
type = "mock"
body = '\${request.body}'
route_response = true
`;

/**
 * Writes `config` to `dir`/wsgate.toml and starts the gateway on it (see `launchGateway`):
 * resolves with `{ child, port }` once it listens.
 */
export async function startGateway(bin, dir, config, log, ms) {
  const configPath = path.join(dir, "wsgate.toml");
  fs.writeFileSync(configPath, config);
  const launched = launchGateway(bin, configPath, dir, log, ms);
  return { child: launched.child, port: await launched.port };
}

/**
 * Ends what a test started, whatever happened: closes `browser`, stops the `chrome` and
 * `gateway` process groups, closes `servers` and removes `tmp`. Every argument may be missing.
 */
export async function tearDown({ browser, chrome, gateway, servers = [], tmp }) {
  try {
    if (browser) await withTimeout(browser.close(), 5000, "browser.close").catch(() => {});
  } finally {
    await stopGroup(chrome, "chromium");
    await stopGroup(gateway, "wsgate");
    for (const server of servers.filter(Boolean)) {
      server.closeAllConnections?.();
      server.close();
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}
