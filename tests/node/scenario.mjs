// The compatibility scenario: node scenario.mjs <url> <default|websocket|polling>
//
// One Manager (one engine.io connection) multiplexes three namespaces:
//   "/"        auth {token, user}: emits with every kind of argument, acks both ways, server call(),
//              rooms, catch-all, then socket.disconnect()  (server sees 'client disconnect')
//   "/chat"    auth {token}: ack + namespace broadcast, then asks to be kicked (client sees
//              'io server disconnect')
//   "/private" refused by the server's connect handler (connect_error with message and data)
// "default" starts on HTTP long-polling and upgrades to websocket; "websocket" uses only websocket;
// "polling" only HTTP long-polling (binary goes base64-encoded in the polling payloads). Everything observed is printed as JSON
// lines (see lib.mjs) for the Python test to assert on.
import { Manager } from 'socket.io-client';
import { observe, observeManager, once, out, run, until, watchdog } from './lib.mjs';

const [url, mode] = process.argv.slice(2);
const TRANSPORTS = { default: {}, websocket: { transports: ['websocket'] }, polling: { transports: ['polling'] } };
if (!url || !Object.hasOwn(TRANSPORTS, mode)) {
  console.error('usage: node scenario.mjs <url> <default|websocket|polling>');
  process.exit(2);
}
watchdog(25000);
const T = 5000;   // bound of every single wait

const manager = new Manager(url, {
  reconnection: false,
  timeout: T,
  ...TRANSPORTS[mode],
});
observeManager(manager);

const root = manager.socket('/', { auth: { token: 'tok-root', user: 'ada' } });
const chat = manager.socket('/chat', { auth: { token: 'tok-chat', n: 2 } });
const priv = manager.socket('/private', { auth: { token: 'bad' } });
observe(root, '/');
observe(chat, '/chat');
observe(priv, '/private');

// Server -> client calls: `call('ask', (20, 22))` and `emit('ask_cb', 'shout', callback=...)`.
root.on('ask', (a, b, ack) => ack({ sum: a + b, product: a * b }));
root.on('ask_cb', (text, ack) => ack(text.toUpperCase(), Buffer.from([9, 8, 7])));

const ack = (socket, ns, name, ...args) =>
  socket.timeout(T).emitWithAck(name, ...args).then((value) => {
    out('ack', { ns, name, value });
    return value;
  });

run(async () => {
  const connected = Promise.all([
    root.connected ? null : once(root, 'connect', T, 'connect /'),
    chat.connected ? null : once(chat, 'connect', T, 'connect /chat'),
  ]);
  const refused = once(priv, 'connect_error', T, 'connect_error /private');
  await connected;
  await refused;

  // Fire-and-forget emits with every kind of argument.
  root.emit('hello', 'text', { a: 1, nested: [1, 'two', null, true] }, 42, -7, 3.5,
    Buffer.from([0, 1, 2, 255]));
  root.send('plain message');

  if (mode === 'default') {
    await until(() => manager.engine.transport.name === 'websocket', T, 'the websocket upgrade');
  }
  out('transport', { name: manager.engine.transport.name });

  // Client -> server with acks: emitWithAck, and emit with an ack callback (two ack arguments).
  await ack(root, '/', 'add', 2, 3);
  const echoed = await new Promise((resolve, reject) => {
    root.timeout(T).emit('echo', 'ping', Buffer.from('bin'), (err, ...args) =>
      err ? reject(err) : resolve(args));
  });
  out('ack', { ns: '/', name: 'echo', value: echoed });

  // Server -> client emit (sent by the handler before its ack), server call() and emit+callback.
  await ack(root, '/', 'please', 'push');
  await ack(root, '/', 'please', 'call');

  // Rooms.
  await ack(root, '/', 'please', 'join');
  await ack(root, '/', 'please', 'rooms');

  // Session data saved by the connect handler, and the server's view of the transport.
  await ack(root, '/', 'please', 'whoami');
  await ack(root, '/', 'please', 'transport');

  // The server's catch-all handler (its return value is the ack).
  root.emit('no_such_event', { z: 1 });
  await ack(root, '/', 'unknown_with_ack', 'x', 1);

  // Second namespace: ack and a namespace broadcast, then the server disconnects us.
  await ack(chat, '/chat', 'msg', 'hi chat');
  const kicked = once(chat, 'disconnect', T, 'disconnect /chat');
  chat.emit('kick_me');
  await kicked;

  // Client-initiated disconnect of "/" (the last namespace: the manager closes the connection).
  const gone = once(root, 'disconnect', T, 'disconnect /');
  root.disconnect();
  await gone;
  await until(() => manager.engine.readyState === 'closed', T, 'the engine.io connection to close');
});
