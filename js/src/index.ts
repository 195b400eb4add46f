// relio-client: a drop-in for socket.io-client whose sessions with relio.AsyncServer deliver every
// emit exactly once and in order across reconnects (see README.md). `io(url, opts)` takes
// socket.io-client's options plus `relio: {...}` and returns a RelioSocket.

import { Options, RelioSocket } from "./socket.js";

export function io(uri?: string | Options, opts?: Options): RelioSocket {
  if (typeof uri === "object") {
    opts = uri;
    uri = undefined;
  }
  const base = (globalThis as any).location?.href as string | undefined;
  if (uri === undefined && base === undefined) throw new TypeError("io(): a URL is needed outside a browser");
  return new RelioSocket(uri ?? base!, opts ?? {});
}

export const connect = io;
export default io;
export { RelioSocket, RESUME_EVENT, SUSPEND_EVENT, DELIVERY_ERROR_EVENT, fitConfig } from "./socket.js";
export type { Options, RelioOptions } from "./socket.js";
export { Engine } from "./engine.js";
export type { EngineEvent } from "./engine.js";
export { DEFAULT_CONFIG, PROTOCOL, makeConfig } from "./config.js";
export type { Config } from "./config.js";
export * as frames from "./frames.js";
export * as payload from "./payload.js";
export { DeliveryError, LocalProtocolError, QueueFull, RelioError, RemoteProtocolError } from "./errors.js";
