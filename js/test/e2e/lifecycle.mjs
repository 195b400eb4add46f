// node lifecycle.mjs <url> <json params>: logs a relio-client socket's lifecycle events and the
// server's numbered emits; emits `num` i every 20 ms until params.count; tests/test_js_client.py
// drives the server (refusing a resume) and the link.
import { io } from "../../dist/esm/index.js";

const [url, paramsText] = process.argv.slice(2);
const p = JSON.parse(paramsText);
const log = (ev, fields = {}) => process.stdout.write(JSON.stringify({ ev, ...fields }) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const socket = io(url, { reconnectionDelay: 100, reconnectionDelayMax: 300 });
socket.on("connect", () => log("connect", { id: socket.id }));
socket.on("disconnect", (reason) => log("disconnect", { reason }));
socket.on("relio_suspend", (reason) => log("suspend", { reason }));
socket.on("relio_resume", () => log("resume", { id: socket.id }));
socket.on("relio_delivery_error", (err) => log("delivery_error", { reason: err.reason }));
await new Promise((resolve) => socket.once("connect", resolve));
for (let i = 0; i < p.count; i++) {
  socket.emit("num", i);
  await sleep(20);
}
await sleep(500);
log("report", { id: socket.id });
socket.disconnect();
setTimeout(() => process.exit(0), 300);
