// Mixed traffic: node mixed.mjs <url>
// Connects to "/" (auth {who: 'node'}); on 'news' (a room broadcast that a relio.AsyncClient in the
// same room also gets) emits 'shout', whose handler broadcasts 'echoed' to the room; on 'echoed'
// disconnects. Prints JSON lines (see lib.mjs).
import { Manager } from 'socket.io-client';
import { observe, observeManager, once, out, run, until, watchdog } from './lib.mjs';

const [url] = process.argv.slice(2);
if (!url) {
  console.error('usage: node mixed.mjs <url>');
  process.exit(2);
}
watchdog(25000);
const T = 10000;

const manager = new Manager(url, { reconnection: false, timeout: T });
observeManager(manager);
const root = manager.socket('/', { auth: { who: 'node' } });
observe(root, '/');

run(async () => {
  const news = once(root, 'news', T, 'news');
  await once(root, 'connect', T, 'connect');
  const [item] = await news;
  const echoed = once(root, 'echoed', T, 'echoed');
  root.emit('shout', `node saw ${item.n}`, Buffer.from([4, 2]));
  await echoed;
  const gone = once(root, 'disconnect', T, 'disconnect');
  root.disconnect();
  await gone;
  await until(() => manager.engine.readyState === 'closed', T, 'the engine.io connection to close');
});
