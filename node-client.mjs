import { ReliableConnection } from "/work/main/clients/js/wsgate-reliable.mjs";
const conn = new ReliableConnection("ws://127.0.0.1:18300/dev");
conn.addEventListener("open", (e) => { console.log("open", e.detail.connectionId); conn.send("hi from node"); });
conn.addEventListener("message", (e) => { console.log("message", e.detail.seq, e.detail.data); conn.close(); });
conn.addEventListener("close", (e) => console.log("close", e.detail.code));
