// The standalone browser bundle's entry (dist/relio-client.min.js, global `relio`): everything of
// index.ts, plus socket.io-client's own `io` as `relio.plainIo` (the bundle includes it anyway), so
// that a page can put a plain Socket.IO client beside a relio one (python -m relio demo --browser).
export * from "./index.js";
export { io as plainIo } from "socket.io-client";
