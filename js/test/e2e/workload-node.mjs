// node workload-node.mjs <url> <json params>: runs workload.js with relio-client (or, with
// params.plain, with socket.io-client itself) and prints JSON lines ({"ev": ...}).
import { io } from "../../dist/esm/index.js";
import { io as plainIo } from "socket.io-client";
import { run } from "./workload.js";

const [url, paramsText] = process.argv.slice(2);
const params = JSON.parse(paramsText);
const log = (ev, fields = {}) => process.stdout.write(JSON.stringify({ ev, ...fields }) + "\n");
const watchdog = setTimeout(() => { log("watchdog"); process.exit(3); }, params.deadlineMs + 20000);
try {
  await run(params.plain ? plainIo : io, url, params, log);
} catch (err) {
  log("error", { message: String(err && err.stack || err) });
  process.exitCode = 2;
}
clearTimeout(watchdog);
setTimeout(() => process.exit(), 200);
