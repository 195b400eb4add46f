// Helpers shared by the Node.js socket.io-client scripts that tests/test_compat_node.py runs.
// Every observation is printed to stdout as one JSON object per line ({"ev": ..., ...}).

/** Make a value JSON-printable: binary -> {"$bin": hex}, functions (ack callbacks) -> "$fn". */
export function norm(value) {
  if (value === undefined) return null;
  if (typeof value === 'function') return '$fn';
  if (Buffer.isBuffer(value)) return { $bin: value.toString('hex') };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString('hex') };
  if (ArrayBuffer.isView(value)) {
    return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') };
  }
  if (Array.isArray(value)) return value.map(norm);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = norm(v);
    return out;
  }
  return value;
}

/** Print one observation. Writes to a pipe are synchronous on Linux, so nothing is lost on exit. */
export function out(ev, fields = {}) {
  process.stdout.write(JSON.stringify({ ev, ...norm(fields) }) + '\n');
}

/** Resolve with the listener's arguments on the next `event`, reject after `ms`. */
export function once(emitter, event, ms, what = event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    function handler(...args) {
      clearTimeout(timer);
      emitter.off(event, handler);
      resolve(args);
    }
    emitter.on(event, handler);
  });
}

/** Resolve when `predicate()` holds (checked every 10 ms), reject after `ms`. */
export function until(predicate, ms, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

/** Log every event a socket receives (onAny), its connect/disconnect/connect_error. */
export function observe(socket, ns) {
  socket.onAny((event, ...args) => out('event', { ns, event, args }));
  socket.on('connect', () => out('connect', { ns, id: socket.id }));
  socket.on('disconnect', (reason) => out('disconnect', { ns, reason }));
  socket.on('connect_error', (err) => out('connect_error', { ns, message: err.message, data: err.data ?? null }));
}

/** Log the engine.io connection's transport changes and closes, manager errors, and the data of
 *  every socket.io CONNECT packet the server sends (the server's handshake reply, verbatim). */
export function observeManager(manager) {
  manager.on('open', () => {
    const engine = manager.engine;
    out('open', { transport: engine.transport.name });
    manager.decoder.on('decoded', (packet) => {
      if (packet.type === 0) out('connect_packet', { ns: packet.nsp, data: packet.data });
    });
    engine.on('upgrade', (transport) => out('upgrade', { transport: transport.name }));
    engine.on('close', (reason) => out('engine_close', { reason }));
  });
  manager.on('error', (err) => out('manager_error', { message: String(err && err.message || err) }));
  manager.on('close', (reason) => out('manager_close', { reason }));
}

/** Exit with code 3 (after saying so) if the script is still running after `ms`. */
export function watchdog(ms) {
  setTimeout(() => {
    out('watchdog', { ms });
    process.exit(3);
  }, ms).unref();
}

/** Run `main`; print {"ev": "done"} and exit 0, or report a failure as {"ev": "fail"} and exit 1.
 *  The exit is explicit: after a polling client closes, its last long-poll GET stays pending on
 *  python-engineio's server (until ping_interval + ping_timeout) and would keep node alive. */
export function run(main) {
  main().then(
    () => {
      out('done');
      process.exit(0);
    },
    (err) => {
      out('fail', { message: String(err && err.stack || err) });
      process.exit(1);
    },
  );
}
