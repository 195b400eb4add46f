// node overflow.mjs <url> <json params>: a relio-client session with a small outbox
// (params.outbox messages); while the link is down (tests/test_js_client.py partitions it), emits
// until the outbox is full: the emit that does not fit throws QueueFull (the sender is told, nothing
// is dropped silently); after the resume every accepted emit reaches the server.
import { io, QueueFull } from "../../dist/esm/index.js";

const [url, paramsText] = process.argv.slice(2);
const p = JSON.parse(paramsText);
const log = (ev, fields = {}) => process.stdout.write(JSON.stringify({ ev, ...fields }) + "\n");
const socket = io(url, { reconnectionDelay: 100, reconnectionDelayMax: 300,
                         relio: { config: { maxOutboxMessages: p.outbox } } });
await new Promise((resolve) => socket.once("connect", resolve));
log("connect", { id: socket.id });
await new Promise((resolve) => socket.once("relio_suspend", resolve));
let accepted = 0;
let error = null;
for (let i = 0; i < p.outbox * 2; i++) {
  try {
    socket.emit("num", i);
    accepted++;
  } catch (err) {
    error = { name: err.name, isQueueFull: err instanceof QueueFull, message: err.message };
    break;
  }
}
log("overflowed", { accepted, error });
await new Promise((resolve) => socket.once("relio_resume", resolve));
while (socket.sessionStats.outboxMessages >= p.outbox) await new Promise((r) => setTimeout(r, 10));
const delivered = await socket.emitWithDelivery("num", accepted);
log("report", { accepted, error, delivered, id: socket.id });
socket.disconnect();
setTimeout(() => process.exit(0), 300);
