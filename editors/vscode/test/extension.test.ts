/**
 * Unit tests of the extension with the `vscode` host API replaced (see vscode-stub.ts):
 * the server command line, the client options, settings, commands, the status bar, runs,
 * cancellation and deactivation.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";

import { PACKAGE, ROOT, State, Uri, host, installStubs } from "./vscode-stub";

installStubs();
// eslint-disable-next-line @typescript-eslint/no-require-imports
const extension = require("../src/extension") as typeof import("../src/extension");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const settings = require("../src/settings") as typeof import("../src/settings");

function context() {
  return { subscriptions: [] as { dispose(): unknown }[], extensionPath: ROOT } as any;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

function editorAt(file: string, line: number, character: number) {
  return {
    document: { uri: Uri.file(file), languageId: "python" },
    selection: { active: { line, character } },
  };
}

describe("editseq extension", () => {
  let ctx: any;

  beforeEach(() => {
    host.reset();
    ctx = context();
  });

  afterEach(async () => {
    await extension.deactivate();
    for (const d of ctx.subscriptions) d.dispose();
  });

  it("starts `python3 -m model_runtime.cli serve` over stdio without a transport (no --stdio)", async () => {
    await extension.activate(ctx);
    const client = host.client;
    assert.equal(host.clients.length, 1);
    assert.equal(client.id, "editseq");
    assert.equal(client.serverOptions.command, "python3");
    assert.deepEqual(client.serverOptions.args, ["-m", "model_runtime.cli", "serve"]);
    assert.equal(client.serverOptions.transport, undefined);
    assert.ok(!client.serverOptions.args.includes("--stdio"));
    assert.equal(client.serverOptions.options.cwd, "/ws");
    assert.deepEqual(client.clientOptions.documentSelector, [{ scheme: "file", language: "python" }]);
    assert.equal(client.started, 1);
    assert.equal(client.state, State.Running);
  });

  it("runs the server with editseq.pythonPath when it is set", async () => {
    host.settings.pythonPath = "/opt/venv/bin/python";
    host.extensions["ms-python.python"] = pythonExtension("/from/python/extension");
    await extension.activate(ctx);
    assert.equal(host.client.serverOptions.command, "/opt/venv/bin/python");
  });

  it("expands ${workspaceFolder} in editseq.pythonPath", async () => {
    host.settings.pythonPath = "${workspaceFolder}/.venv/bin/python";
    await extension.activate(ctx);
    assert.equal(host.client.serverOptions.command, "/ws/.venv/bin/python");
  });

  it("else runs it with the Python extension's interpreter", async () => {
    host.extensions["ms-python.python"] = pythonExtension("/home/u/.venv/bin/python");
    const api = await extension.activate(ctx);
    assert.equal(host.client.serverOptions.command, "/home/u/.venv/bin/python");
    assert.deepEqual(api.python(), { python: "/home/u/.venv/bin/python", source: "ms-python.python" });
  });

  it("passes the settings the user set, and only the server's, as initializationOptions", async () => {
    host.settings = { model: "/models/tiny", rounds: 2, temperature: 0.5, pythonPath: "/usr/bin/python3", "trace.server": "verbose" };
    await extension.activate(ctx);
    assert.deepEqual(host.client.clientOptions.initializationOptions,
      { model: "/models/tiny", rounds: 2, temperature: 0.5, trustedWorkspace: false });
  });

  it("tells the server whether the folder is trusted, and restarts it when trust is granted", async () => {
    await extension.activate(ctx);
    assert.equal(host.client.clientOptions.initializationOptions.trustedWorkspace, false);
    const before = host.clients.length;
    host.grantTrust();
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(host.clients.length, before + 1);
    assert.equal(host.client.clientOptions.initializationOptions.trustedWorkspace, true);
  });

  it("mirrors every server setting, with the server's defaults (lsp_server/settings.py, model_runtime/defaults.py)", () => {
    const source = fs.readFileSync(path.join(ROOT, "..", "..", "lsp_server", "settings.py"), "utf8");
    const engineDefaults = fs.readFileSync(path.join(ROOT, "..", "..", "model_runtime", "defaults.py"), "utf8");
    const literal = (text: string) => JSON.parse(text.replace(/_/g, "").replace(/'/g, '"'));
    // A field's default is a literal, or `defaults.NAME` read from the engine's one source of defaults
    // (where a name may stand for another: `MODEL = HUB_MODEL`).
    const constant = (name: string): unknown => {
      const found = engineDefaults.match(new RegExp(`^${name} = (.+)$`, "m"));
      assert.ok(found, `model_runtime/defaults.py has no ${name}`);
      const value = found![1].trim();
      return /^[A-Z][A-Z0-9_]*$/.test(value) ? constant(value) : literal(value);
    };
    const resolve = (value: string) => {
      const name = value.match(/^defaults\.(\w+)$/)?.[1];
      return name ? constant(name) : literal(value);
    };
    const body = source.slice(source.indexOf("class Settings"), source.indexOf("_CHOICES"));
    const fields = [...body.matchAll(/^ {4}(\w+): (str|int|float|bool) = (.+)$/gm)].map((m) => ({
      name: m[1],
      value: resolve(m[3]),
    }));
    const required = ["model", "backend", "endpoint", "device", "format", "rounds", "candidates", "maxNewTokens",
      "temperature", "timeout", "python", "testCommand"];
    const serverNames = fields.map((f) => f.name);
    for (const name of required) assert.ok(serverNames.includes(name), `server has no setting ${name}`);
    const properties = PACKAGE.contributes.configuration.properties;
    for (const key of settings.SERVER_SETTING_KEYS) {
      const field = fields.find((f) => f.name === key);
      assert.ok(field, `editseq.${key} is not a server setting`);
      assert.ok(`editseq.${key}` in properties, `package.json does not contribute editseq.${key}`);
      assert.equal(properties[`editseq.${key}`].default, field!.value, `default of editseq.${key}`);
    }
    for (const name of required) assert.ok((settings.SERVER_SETTING_KEYS as readonly string[]).includes(name), name);
  });

  it("answers workspace/configuration for `editseq` with the server's keys only", async () => {
    host.settings = { device: "cpu", pythonPath: "/x/python" };
    await extension.activate(ctx);
    const middleware = host.client.clientOptions.middleware.workspace.configuration;
    const answer = await middleware({ items: [{ section: "editseq" }] }, undefined, () => {
      throw new Error("must not ask VS Code for the raw section");
    });
    assert.deepEqual(answer, [{ device: "cpu" }]);
    const mixed = await middleware({ items: [{ section: "python" }, { section: "editseq" }] }, undefined,
      async () => [{ raw: true }, { pythonPath: "/x/python", device: "cpu" }]);
    assert.deepEqual(mixed, [{ raw: true }, { device: "cpu" }]);
  });

  it("pushes changed settings with didChangeConfiguration; a removed one goes back to its default", async () => {
    host.settings = { rounds: 2 };
    await extension.activate(ctx);
    host.changeSettings({ rounds: 6, testCommand: "pytest tests/test_calc.py" });
    await tick();
    assert.deepEqual(host.client.sent.at(-1), {
      method: "workspace/didChangeConfiguration",
      params: { settings: { editseq: { rounds: 6, testCommand: "pytest tests/test_calc.py" } } },
    });
    host.changeSettings({ rounds: undefined });
    await tick();
    assert.deepEqual(host.client.sent.at(-1)?.params, { settings: { editseq: { rounds: 4, testCommand: "pytest tests/test_calc.py" } } });
    assert.equal(host.clients.length, 1, "a server setting must not restart the server");
  });

  it("restarts the server when editseq.pythonPath changes", async () => {
    await extension.activate(ctx);
    const first = host.client;
    host.changeSettings({ pythonPath: "/new/python" });
    await until(() => host.clients.length === 2 && host.client.started === 1);
    assert.equal(first.stopped, 1);
    assert.equal(host.client.serverOptions.command, "/new/python");
  });

  it("registers every command of package.json, and no other", async () => {
    await extension.activate(ctx);
    const contributed = PACKAGE.contributes.commands.map((c: { command: string }) => c.command).sort();
    assert.deepEqual([...host.commands.keys()].sort(), contributed);
    for (const id of ["editseq.writeFunction", "editseq.refineFunction", "editseq.cancel", "editseq.showTrajectory"]) {
      assert.ok(host.commands.has(id), id);
    }
    // The server's own commands are registered by the language client: ours must not clash with them.
    assert.ok(!host.commands.has("editseq.write") && !host.commands.has("editseq.refine"));
    const titles = PACKAGE.contributes.commands.map((c: { category: string; title: string }) => `${c.category}: ${c.title}`);
    for (const title of ["editseq: Write function edit by edit", "editseq: Refine function until tests pass",
      "editseq: Cancel", "editseq: Show last run trajectory"]) {
      assert.ok(titles.includes(title), title);
    }
  });

  it("updates the status bar item on editseq/status notifications", async () => {
    await extension.activate(ctx);
    const item = host.statusItems[0];
    assert.ok(item.shown);
    assert.match(item.text, /editseq/);
    const notify = host.client.notifications.get("editseq/status")!;
    assert.ok(notify, "no handler for editseq/status");
    notify({ state: "loading", message: "loading /models/tiny" });
    assert.match(item.text, /loading/);
    assert.match(item.tooltip, /\/models\/tiny/);
    notify({ state: "busy", message: "" });
    assert.match(item.text, /busy/);
    assert.equal(item.command, "editseq.cancel");
    notify({ state: "error", message: "editseq: cannot load the model" });
    assert.match(item.text, /error/);
    assert.equal(item.backgroundColor?.id, "statusBarItem.errorBackground");
    assert.match(item.tooltip, /cannot load the model/);
    notify({ state: "ready", message: "" });
    assert.equal(item.text, "$(check) editseq");
    assert.equal(item.backgroundColor, undefined);
  });

  it("writes the function at the cursor: editseq.write(uri, position), then applies the run's last step", async () => {
    await extension.activate(ctx);
    host.activeTextEditor = editorAt("/ws/calc.py", 1, 4);
    const step1 = { title: "editseq: add step 1/2: total = a + b", data: { run: "r1", k: 1 } };
    const step2 = { title: "editseq: add steps 1-2, parses (no tests run)", data: { run: "r1", k: 2 } };
    host.onRequest = (method, params) => {
      if (method === "workspace/executeCommand") return { run: "r1", steps: 2, verified: false, summary: "add: 2 step(s)" };
      if (method === "textDocument/codeAction") return [step1, step2, { title: "editseq: write add edit by edit", data: {} }];
      if (method === "codeAction/resolve") return { ...params, edit: { changes: { "file:///ws/calc.py": [] } } };
      throw new Error(`unexpected ${method}`);
    };
    const result = await host.commands.get("editseq.writeFunction")!({ pick: "last" });
    assert.deepEqual(result, { run: "r1", steps: 2, verified: false, summary: "add: 2 step(s)" });
    const [run, actions, resolve] = host.client.requests;
    assert.equal(run.method, "workspace/executeCommand");
    assert.deepEqual(run.params, { command: "editseq.write", arguments: ["file:///ws/calc.py", { line: 1, character: 4 }] });
    assert.ok(run.token, "the run must be cancellable");
    assert.equal(actions.method, "textDocument/codeAction");
    assert.deepEqual(actions.params.range, { start: { line: 1, character: 4 }, end: { line: 1, character: 4 } });
    assert.equal(resolve.method, "codeAction/resolve");
    assert.equal(resolve.params.title, step2.title);
    assert.deepEqual(host.appliedEdits, [{ converted: { changes: { "file:///ws/calc.py": [] } } }]);

    const last = (await host.commands.get("editseq.showTrajectory")!()) as any;
    assert.equal(last.outcome, "finished");
    assert.equal(last.applied, step2.title);
    assert.deepEqual(last.steps, [step1.title, step2.title]);
    const channel = host.channels.find((c) => c.name === "editseq runs");
    assert.ok(channel.shown > 0 && channel.lines.join("\n").includes('"run": "r1"'));
  });

  it("asks which steps to apply by default, and applies none when the pick is dismissed", async () => {
    await extension.activate(ctx);
    host.activeTextEditor = editorAt("/ws/calc.py", 5, 0);
    let offered: string[] = [];
    host.quickPick = (items) => {
      offered = items.map((i: { label: string }) => i.label);
      return undefined;
    };
    host.onRequest = (method) =>
      method === "workspace/executeCommand" ? { run: "r2", steps: 1 }
        : method === "textDocument/codeAction" ? [{ title: "editseq: mul step 1/1, parses (no tests run)", data: { run: "r2", k: 1 } },
          { title: "editseq: old run", data: { run: "r0", k: 1 } }] : null;
    await host.commands.get("editseq.refineFunction")!();
    assert.equal(host.client.requests[0].params.command, "editseq.refine");
    assert.deepEqual(offered, ["mul step 1/1, parses (no tests run)"]);
    assert.deepEqual(host.appliedEdits, []);
  });

  it("editseq: Cancel cancels the run in flight ($/cancelRequest through the request's token)", async () => {
    await extension.activate(ctx);
    host.activeTextEditor = editorAt("/ws/calc.py", 1, 0);
    host.onRequest = (method, _params, token) =>
      new Promise((resolve, reject) => {
        token.onCancellationRequested(() => reject(Object.assign(new Error("cancelled"), { code: -32800 })));
      });
    const running = host.commands.get("editseq.writeFunction")!();
    await tick();
    assert.equal(host.commands.get("editseq.cancel")!(), 1);
    assert.equal(await running, undefined);
    assert.equal(((await host.commands.get("editseq.showTrajectory")!()) as any).outcome, "cancelled");
    assert.equal(host.commands.get("editseq.cancel")!(), 0);
  });

  it("routes the server's run commands from code actions through the run manager", async () => {
    await extension.activate(ctx);
    const middleware = host.client.clientOptions.middleware.executeCommand;
    host.onRequest = () => ({ run: "r3", steps: 0 });
    const passed: unknown[] = [];
    const next = (command: string, args: unknown[]) => {
      passed.push([command, args]);
      return "next";
    };
    const args = ["file:///ws/calc.py", { line: 3, character: 0 }];
    assert.deepEqual(await middleware("editseq.write", args, next), { run: "r3", steps: 0 });
    assert.deepEqual(host.client.requests[0].params, { command: "editseq.write", arguments: args });
    assert.ok(host.client.requests[0].token instanceof Object);
    assert.equal(await middleware("editseq.apply", ["r3", 1], next), "next");
    assert.deepEqual(passed, [["editseq.apply", ["r3", 1]]]);
  });

  it("reports a server that cannot start, naming the interpreter and editseq.pythonPath", async () => {
    host.settings.pythonPath = "/nonexistent/python";
    host.startError = new Error("Pending response rejected since connection got disposed");
    const api = await extension.activate(ctx);
    assert.equal(api.statusBar.state, "error");
    const error = host.messages.find((m) => m.level === "error");
    assert.ok(error, "no error message");
    assert.match(error!.text, /\/nonexistent\/python/);
    assert.match(error!.text, /editseq\.pythonPath/);
    // vscode-languageclient retries a failed start on its own and stops again: the error stays shown.
    for (const listener of host.client.stateListeners) listener({ oldState: State.Starting, newState: State.Stopped });
    assert.equal(api.statusBar.state, "error");
    assert.match(host.statusItems[0].tooltip, /\/nonexistent\/python/);
  });

  it("deactivate stops the client", async () => {
    await extension.activate(ctx);
    const client = host.client;
    await extension.deactivate();
    assert.equal(client.stopped, 1);
    assert.equal(client.state, State.Stopped);
  });

  it("serverSettings leaves out unset keys and client-only keys", () => {
    const config = {
      get: (key: string) => ({ model: "m", pythonPath: "p" } as Record<string, unknown>)[key],
      inspect: (key: string) => (key === "model" ? { key, defaultValue: "d", workspaceValue: "m" } : { key, defaultValue: 1 }),
    };
    assert.deepEqual(settings.serverSettings(config as any), { model: "m" });
    assert.deepEqual(settings.serverSettings(config as any, ["rounds"]), { model: "m", rounds: 1 });
  });
});

function pythonExtension(executable: string) {
  return {
    isActive: true,
    exports: {
      environments: {
        getActiveEnvironmentPath: () => ({ id: "venv", path: path.dirname(path.dirname(executable)) }),
        resolveEnvironment: async () => ({ executable: { uri: Uri.file(executable) } }),
      },
    },
  };
}

async function until(condition: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
