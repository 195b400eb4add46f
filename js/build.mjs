// Build relio-client: ESM + .d.ts with tsc, CJS and the standalone browser bundle (socket.io-client
// included, global `relio`) with esbuild. Run by `npm run build` and by the pytest suite.
import { execFileSync } from "node:child_process";
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
execFileSync(process.execPath, [here + "node_modules/typescript/bin/tsc", "-p", here + "tsconfig.json"],
             { stdio: "inherit" });
await build({
  entryPoints: [here + "src/index.ts"], bundle: true, format: "cjs", platform: "neutral",
  outfile: here + "dist/cjs/index.cjs", external: ["socket.io-client"], target: "es2020",
});
await build({
  entryPoints: [here + "src/bundle.ts"], bundle: true, format: "iife", globalName: "relio",
  platform: "browser", outfile: here + "dist/relio-client.min.js", minify: true, target: "es2020",
  legalComments: "none",
});
