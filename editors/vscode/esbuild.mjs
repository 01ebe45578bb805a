// Bundles the extension (and vscode-languageclient) into dist/extension.js; `vscode` is the host's.
import { build } from "esbuild";

const production = process.argv.includes("--production");
await build({
  entryPoints: ["src/extension.ts"],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  external: ["vscode"],
  outfile: "dist/extension.js",
  sourcemap: production ? false : "linked",
  minify: production,
  logLevel: "warning",
});
