// node browser.mjs <page url> <json params>: opens the page in Debian's headless Chromium (driven
// by playwright-core, no browser download) and prints the page's JSON console lines on stdout.
import { chromium } from "playwright-core";

const [url, paramsText] = process.argv.slice(2);
const params = JSON.parse(paramsText);
const executablePath = process.env.RELIO_CHROMIUM || "/usr/bin/chromium";
const out = (line) => process.stdout.write(line + "\n");
const watchdog = setTimeout(() => { out(JSON.stringify({ ev: "watchdog" })); process.exit(3); },
                            params.deadlineMs + 30000);
const browser = await chromium.launch({
  executablePath, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  let finished;
  const done = new Promise((resolve) => { finished = resolve; });
  page.on("console", (msg) => {
    const text = msg.text();
    if (!text.startsWith("{")) return;
    out(text);
    const ev = JSON.parse(text).ev;
    if (ev === "report" || ev === "error") finished();
  });
  page.on("pageerror", (err) => { out(JSON.stringify({ ev: "error", message: String(err) })); finished(); });
  await page.goto(url + "#" + encodeURIComponent(paramsText));
  await done;
  await new Promise((resolve) => setTimeout(resolve, 300));    // let disconnect() reach the server
} finally {
  await browser.close();
  clearTimeout(watchdog);
}
