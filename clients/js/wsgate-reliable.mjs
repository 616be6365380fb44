// A client for wsgate's resumable connections (`wsgate.reliable.v1`): one ES module, no
// dependencies, for browsers and for Node 22+ (or Node 20 with --experimental-websocket), which
// have a built-in WebSocket.
//
//   import { ReliableConnection } from "./wsgate-reliable.mjs";
//   const conn = new ReliableConnection("wss://example.com/prod");
//   conn.addEventListener("message", (e) => console.log(e.detail.seq, e.detail.data));
//   conn.addEventListener("resumed", (e) => console.log("back as", e.detail.connectionId));
//   conn.addEventListener("reset", (e) => console.log("new connection", e.detail.connectionId));
//   conn.send(JSON.stringify({ action: "sendmessage", text: "hi" }));
//
// It acknowledges what it received, reconnects after a drop with backoff and jitter, resumes with
// its token and last `seq`, drops duplicates by `seq`, and when the gateway cannot resume it
// (window passed, token used) connects anew and says so with a `reset` event. Events: `open`
// (first connection), `message` ({seq, data}: a string, or a Uint8Array for binary), `resumed`,
// `reset`, `close` (for good).

export const SUBPROTOCOL = "wsgate.reliable.v1";
const RESUME_FAILED = 4410;

export class ReliableConnection extends EventTarget {
  #url;
  #options;
  #ws = null;
  #token = "";
  #lastSeq = 0;
  #acked = 0;
  #ackTimer = null;
  #attempt = 0;
  #closing = false;
  #outgoing = [];
  connectionId = "";

  constructor(url, options = {}) {
    super();
    this.#url = url;
    this.#options = {
      ackEvery: 16,
      ackIntervalMs: 1000,
      minBackoffMs: 100,
      maxBackoffMs: 5000,
      WebSocket: globalThis.WebSocket,
      ...options,
    };
    this.#open(false);
  }

  /** The last message received, by `seq`. */
  get lastSeq() {
    return this.#lastSeq;
  }

  /** Sends a message (routed by the gateway as usual); queued while reconnecting. */
  send(data) {
    if (this.#ws && this.#ws.readyState === 1 && this.connectionId) {
      this.#ws.send(data);
    } else {
      this.#outgoing.push(data);
    }
  }

  /** Closes for good (the gateway tells `$disconnect` at once). */
  close() {
    this.#closing = true;
    clearTimeout(this.#ackTimer);
    if (this.#ws) this.#ws.close(1000);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #open(resume) {
    let url = this.#url;
    if (resume) {
      const u = new URL(url);
      u.searchParams.set("resume", this.#token);
      u.searchParams.set("seq", String(this.#lastSeq));
      url = u.toString();
    }
    const ws = new this.#options.WebSocket(url, [SUBPROTOCOL]);
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    let greeted = false;
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      const frame = JSON.parse(event.data);
      if (!greeted) {
        greeted = true;
        this.#greeted(frame);
      } else if (frame.type === "message") {
        this.#received(frame);
      }
    };
    ws.onclose = (event) => this.#closed(event, greeted);
  }

  #greeted(frame) {
    if (frame.type === "resume-failed") return; // the 4410 close follows
    this.#token = frame.resumeToken;
    this.#attempt = 0;
    if (frame.type === "resumed") {
      this.#emit("resumed", { connectionId: frame.connectionId });
    } else if (this.connectionId && frame.connectionId !== this.connectionId) {
      this.#lastSeq = 0;
      this.#acked = 0;
      this.#emit("reset", { connectionId: frame.connectionId });
    } else if (!this.connectionId) {
      this.#emit("open", { connectionId: frame.connectionId });
    }
    this.connectionId = frame.connectionId;
    for (const data of this.#outgoing.splice(0)) this.#ws.send(data);
  }

  #received(frame) {
    if (frame.seq <= this.#lastSeq) return; // sent again after a resume: delivered already
    this.#lastSeq = frame.seq;
    const data = "data" in frame ? frame.data : Uint8Array.from(atob(frame.dataBase64), (c) => c.charCodeAt(0));
    this.#emit("message", { seq: frame.seq, data });
    if (this.#lastSeq - this.#acked >= this.#options.ackEvery) {
      this.#ack();
    } else if (!this.#ackTimer) {
      this.#ackTimer = setTimeout(() => this.#ack(), this.#options.ackIntervalMs);
    }
  }

  #ack() {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (this.#lastSeq > this.#acked && this.#ws && this.#ws.readyState === 1) {
      this.#ws.send(JSON.stringify({ type: "ack", seq: this.#lastSeq }));
      this.#acked = this.#lastSeq;
    }
  }

  #closed(event, greeted) {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (this.#closing || (greeted && (event.code === 1000 || event.code === 1001))) {
      this.#emit("close", { code: event.code, reason: event.reason });
      return;
    }
    // 4410: the gateway let the connection go; connect anew at once. Anything else: resume.
    const resume = event.code !== RESUME_FAILED && Boolean(this.#token);
    if (!resume) this.#token = "";
    const { minBackoffMs, maxBackoffMs } = this.#options;
    const delay = this.#attempt === 0 || !resume ? 0 : Math.min(maxBackoffMs, minBackoffMs * 2 ** this.#attempt);
    this.#attempt += 1;
    setTimeout(() => this.#open(resume), delay * (0.5 + Math.random() / 2));
  }
}
