// What the browser tests share: bounded waits, reading a child's output, and stopping the
// processes a test started by their process group.

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
