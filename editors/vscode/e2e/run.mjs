#!/usr/bin/env node
// `npm run e2e`: the extension in a real VS Code (code-server 4.100.3 = VS Code 1.100.3), opened by
// headless Chromium so that the extension host starts, against the real editseq server and a real
// tiny model. The extension's self-test (src/selftest.ts, enabled by EDITSEQ_VSCODE_SELFTEST_OUT)
// does the editor side and writes JSON; this script prepares everything, waits for that JSON,
// checks the file on disk once more with Python, and exits non-zero on any failure.
//
// Environment:
//   EDITSEQ_E2E_CACHE    tooling folder of scripts/install-e2e.sh (default: .e2e-cache)
//   EDITSEQ_E2E_MODEL    a model folder to use (default: train a tiny LintSeq model, about a minute)
//   EDITSEQ_PYTHON       interpreter with editseq installed (default: python3)
//   CHROMIUM             browser binary (default: chromium on PATH)
//   EDITSEQ_E2E_TIMEOUT  seconds to wait for the self-test (default: 420)
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REPO = path.resolve(HERE, "..", "..");
const CACHE = path.resolve(process.env.EDITSEQ_E2E_CACHE || path.join(HERE, ".e2e-cache"));
const ENTRY = path.join(CACHE, "node_modules", "code-server", "out", "node", "entry.js");
const PYTHON = process.env.EDITSEQ_PYTHON || "python3";
const TIMEOUT = Number(process.env.EDITSEQ_E2E_TIMEOUT || 420) * 1000;
const RUN = path.join(HERE, ".e2e-runs", "last");
const t0 = Date.now();
const say = (text) => console.log(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s] ${text}`);

function which(name) {
  const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

function missing(what) {
  console.error(`e2e: ${what}\n` +
    "e2e: install the tooling with `bash scripts/install-e2e.sh` (Debian packages chromium, ripgrep, " +
    "build-essential, libkrb5-dev, and code-server 4.100.3 from npm into .e2e-cache; about 5 minutes, ~800 MB).");
  process.exit(2);
}

// -- 1. tooling ------------------------------------------------------------------------------
const chromium = process.env.CHROMIUM || which("chromium") || which("chromium-browser");
if (!fs.existsSync(ENTRY)) missing(`code-server is not installed (no ${ENTRY})`);
if (!chromium) missing("chromium is not installed (apt-get install chromium)");
const probe = spawnSync(PYTHON, ["-c", "import lsp_server.server, model_runtime.cli"], { encoding: "utf8", cwd: "/" });
if (probe.status !== 0) {
  console.error(`e2e: ${PYTHON} cannot import the editseq server (pip install -e ${REPO}):\n${probe.stderr}`);
  process.exit(2);
}

// -- 2. the extension, the model, the workspace ------------------------------------------------
fs.rmSync(RUN, { recursive: true, force: true });
fs.mkdirSync(RUN, { recursive: true });
say("packaging the extension");
execFileSync("npm", ["run", "--silent", "package"], { cwd: HERE, stdio: ["ignore", "ignore", "inherit"] });
const vsix = path.join(HERE, "editseq.vsix");

let model = process.env.EDITSEQ_E2E_MODEL;
if (!model) {
  model = path.join(RUN, "model");
  say(`training a tiny LintSeq model into ${model} (set EDITSEQ_E2E_MODEL to reuse one)`);
  execFileSync(PYTHON, ["-c", `from model_runtime.training.tiny_model import train_lintseq_model; train_lintseq_model(${JSON.stringify(model)})`],
    { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
}
model = path.resolve(model);

const workspace = path.join(RUN, "workspace");
const userData = path.join(RUN, "user-data");
const extensions = path.join(RUN, "extensions");
const browserProfile = path.join(RUN, "chromium-profile");
const out = path.join(RUN, "selftest.json");
fs.mkdirSync(workspace, { recursive: true });
// One docstring-only function per file, two that the tiny LintSeq model (trained on a sample of
// the standard library, which has collections.abc's Set.isdisjoint and .remove, MutableMapping.clear) knows
// how to write; src/selftest.ts names the same files and functions.
const FILES = {
  "sets.py": { name: "isdisjoint", text: 'def isdisjoint(self, other):\n    """Return True if two sets have a null intersection."""\n' },
  "mapping.py": { name: "clear", text: 'def clear(self):\n    """D.clear() -> None.  Remove all items from D."""\n' },
  "removal.py": { name: "remove", text: 'def remove(self, value):\n    """Remove an element. If not a member, raise a KeyError."""\n' },
};
for (const [file, { text }] of Object.entries(FILES)) fs.writeFileSync(path.join(workspace, file), text);
fs.mkdirSync(path.join(userData, "User"), { recursive: true });
fs.writeFileSync(path.join(userData, "User", "settings.json"), JSON.stringify({
  "editseq.pythonPath": PYTHON.includes("/") ? path.resolve(PYTHON) : which(PYTHON) || PYTHON,
  "editseq.model": model,
  "editseq.device": "cpu",
  "editseq.timeout": 180,
  "editseq.trace.server": "messages",
  "security.workspace.trust.enabled": false,
  "workbench.startupEditor": "none",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
}, null, 2));

const serverEnv = {
  ...process.env,
  HF_HUB_OFFLINE: "1",
  TRANSFORMERS_OFFLINE: "1",
  TRANSFORMERS_VERBOSITY: "error",
  OMP_NUM_THREADS: process.env.OMP_NUM_THREADS || "1",
  PYTEST_DISABLE_PLUGIN_AUTOLOAD: "1",
  EDITSEQ_VSCODE_SELFTEST_OUT: out,
};

say("installing the .vsix into code-server");
execFileSync(process.execPath, [ENTRY, "--config", "/dev/null", "--user-data-dir", userData, "--extensions-dir", extensions,
  "--install-extension", vsix], { stdio: ["ignore", "ignore", "inherit"] });

// -- 3. code-server + chromium ------------------------------------------------------------------
const port = await new Promise((resolve) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  });
});
const children = [];
function start(command, args, logName, env) {
  const log = fs.openSync(path.join(RUN, logName), "w");
  const child = spawn(command, args, { env, detached: true, stdio: ["ignore", log, log] });
  children.push(child);
  return child;
}
function stopAll() {
  for (const child of children) {
    try { process.kill(-child.pid, "SIGTERM"); } catch { /* already gone */ }
  }
  const end = Date.now() + 3000;
  while (Date.now() < end && children.some((c) => c.exitCode === null && c.signalCode === null)) {
    spawnSync("sleep", ["0.1"]);
  }
  for (const child of children) {
    try { process.kill(-child.pid, "SIGKILL"); } catch { /* already gone */ }
  }
}
process.on("SIGINT", () => { stopAll(); process.exit(130); });
process.on("SIGTERM", () => { stopAll(); process.exit(143); });

say(`starting code-server on 127.0.0.1:${port}`);
start(process.execPath, [ENTRY, "--config", "/dev/null", "--bind-addr", `127.0.0.1:${port}`, "--auth", "none",
  "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", "--user-data-dir", userData,
  "--extensions-dir", extensions, workspace], "code-server.log", serverEnv);

async function until(condition, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

let result;
let failure;
try {
  await until(async () => {
    try { return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok; } catch { return false; }
  }, 60_000, "code-server");
  say("code-server is up; opening the workspace in headless chromium");
  start(chromium, ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    `--user-data-dir=${browserProfile}`, `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`],
  "chromium.log", { ...process.env });
  await until(() => fs.existsSync(out + ".started"), 120_000, "the extension to activate and start its self-test");
  say("the extension is active; self-test running");
  await until(() => fs.existsSync(out), TIMEOUT, "the extension's self-test (EDITSEQ_E2E_TIMEOUT)");
  result = JSON.parse(fs.readFileSync(out, "utf8"));
} catch (error) {
  failure = String(error?.message ?? error);
} finally {
  stopAll();
}

// -- 4. verdict ---------------------------------------------------------------------------------
function findLogs(dir, pattern, found = []) {
  if (!fs.existsSync(dir)) return found;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) findLogs(full, pattern, found);
    else if (pattern.test(full)) found.push(full);
  }
  return found;
}
const serverLogs = findLogs(path.join(userData, "logs"), /exthost\d*\/(editseq[^/]*\/.*|.*editseq.*)\.log$/);

const checks = result?.checks ?? [];
for (const check of checks) {
  console.log(`  ${check.ok ? "ok  " : "FAIL"} ${check.name}${check.ok ? "" : "  " + JSON.stringify(check.detail)}`);
}
if (result) {
  console.log(`  code actions listed: ${JSON.stringify(result.titles)}`);
  console.log(`  write via the code action: ${result.writePath}, ${result.writeSeconds} s; via the command: ${result.secondSeconds} s; ` +
    `via the code action's command (resolveTimeout 0): ${result.thirdSeconds} s`);
  console.log(`  code actions after the run: ${JSON.stringify(result.firstSteps)}`);
  console.log(`  status notifications: ${JSON.stringify((result.statuses ?? []).map((s) => s.state))}`);
}

// The files on disk, checked by Python: each parses, keeps its docstring and gained a body.
let disk = { ok: true, bodies: {} };
for (const [file, { name }] of Object.entries(FILES)) {
  const verify = spawnSync(PYTHON, ["-c", `
import ast, json, sys
text = open(sys.argv[1]).read()
out = {"text": text, "ok": False}
try:
    (fn,) = [n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == sys.argv[2]]
    out["statements"] = len(fn.body)
    out["ok"] = ast.get_docstring(fn) is not None and len(fn.body) > 1
except (SyntaxError, ValueError) as exc:
    out["error"] = repr(exc)
print(json.dumps(out))
`, path.join(workspace, file), name], { encoding: "utf8" });
  let one;
  try { one = JSON.parse(verify.stdout); } catch { one = { ok: false, error: verify.stderr }; }
  console.log(`  ${one.ok ? "ok  " : "FAIL"} ${file} on disk parses, keeps its docstring and ${name} has a body ` +
    `(${one.statements ?? one.error} statements)`);
  if (one.text) console.log(one.text.replace(/\n$/, "").replace(/^/gm, "    | "));
  disk.ok &&= one.ok;
}

const ok = Boolean(result?.ok) && disk.ok && !failure;
if (!ok) {
  if (failure) console.error(`e2e: ${failure}`);
  for (const log of [...serverLogs, path.join(RUN, "code-server.log")]) {
    if (!fs.existsSync(log)) continue;
    const text = fs.readFileSync(log, "utf8").split("\n").slice(-60).join("\n");
    console.error(`---- ${path.relative(HERE, log)} (last 60 lines)\n${text}`);
  }
}
say(`${ok ? "PASS" : "FAIL"} (artifacts in ${path.relative(HERE, RUN)})`);
process.exit(ok ? 0 : 1);
