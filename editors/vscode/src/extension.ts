/**
 * editseq for VS Code: starts the editseq language server (`python -m model_runtime.cli serve`)
 * with vscode-languageclient and adds commands, a status bar item and settings around it.
 *
 * The server's code actions ("editseq: write <name> edit by edit", "editseq: refine <name> until
 * tests pass", "editseq: fix <test>") come through the client unchanged; their long runs
 * (`editseq.write` / `editseq.refine`) go through {@link RunManager} so that they can be cancelled
 * and shown afterwards. Progress (`$/progress`) is the client's built-in support.
 *
 * No `transport` in the server options: `TransportKind.stdio` would append `--stdio` to the
 * command line (clients.md §4.5); without it the client talks over the process's stdin/stdout.
 */
import { execFile } from "node:child_process";
import * as vscode from "vscode";
import { LanguageClient, State } from "vscode-languageclient/node";
import type { LanguageClientOptions, ServerOptions } from "vscode-languageclient/node";

import { choosePython, onPythonInterpreterChange, type PythonChoice } from "./python";
import { RUN_COMMANDS, RunManager, type StepPick } from "./runs";
import { runSelfTest } from "./selftest";
import { SERVER_SETTING_KEYS, serverSettings } from "./settings";
import { STATUS_NOTIFICATION, StatusBar } from "./status";

export const SERVER_MODULE_ARGS = ["-m", "model_runtime.cli", "serve"];
export const DOCUMENT_SELECTOR = [{ scheme: "file", language: "python" }];
export const SELFTEST_ENV = "EDITSEQ_VSCODE_SELFTEST_OUT";

/** What `activate` returns (and the e2e self-test reads). */
export interface EditseqApi {
  client(): LanguageClient | undefined;
  python(): PythonChoice | undefined;
  statusBar: StatusBar;
  runs: RunManager;
  restart(): Promise<void>;
}

interface State_ {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  statusBar: StatusBar;
  runs: RunManager;
  client?: LanguageClient;
  python?: PythonChoice;
  sentKeys: Set<string>;
  starting?: Promise<void>;
}

let state: State_ | undefined;

function folderUri(): vscode.Uri | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri;
}

function settingsForServer(scope?: vscode.Uri): Record<string, unknown> {
  const current = state!;
  const settings = serverSettings(vscode.workspace.getConfiguration("editseq", scope ?? folderUri()), current.sentKeys);
  for (const key of Object.keys(settings)) current.sentKeys.add(key);
  return settings;
}

function buildClient(python: string): LanguageClient {
  const current = state!;
  const folder = folderUri();
  const serverOptions: ServerOptions = {
    command: python,
    args: [...SERVER_MODULE_ARGS],
    options: {
      cwd: folder?.scheme === "file" ? folder.fsPath : undefined,
      env: { ...process.env, PYTHONUNBUFFERED: "1" },
    },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: DOCUMENT_SELECTOR,
    // The server lets a workspace's pyproject.toml choose the model, endpoint or interpreter only when
    // the user trusts the folder (VS Code's Workspace Trust).
    initializationOptions: { ...settingsForServer(folder), trustedWorkspace: vscode.workspace.isTrusted },
    outputChannel: current.log,
    middleware: {
      // The server's run commands (also what its code actions fall back to for long runs) go
      // through the run manager: cancellable by "editseq: Cancel" and recorded for the trajectory.
      executeCommand: (command, args, next) =>
        RUN_COMMANDS.has(command) ? current.runs.execute(command, args) : next(command, args),
      workspace: {
        // The `editseq` section without the client-only keys (pythonPath, trace).
        configuration: async (params, token, next) => {
          const answers = params.items.every((item) => item.section === "editseq")
            ? params.items.map(() => null)
            : await next(params, token);
          if (!Array.isArray(answers)) return answers;
          return params.items.map((item, i) =>
            item.section === "editseq"
              ? settingsForServer(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
              : answers[i],
          );
        },
      },
    },
  };
  const client = new LanguageClient("editseq", "editseq", serverOptions, clientOptions);
  client.onNotification(STATUS_NOTIFICATION, (params: { state?: string; message?: string }) => {
    current.statusBar.onNotification(params);
    current.runs.onStatus(params);
  });
  client.onDidChangeState((event) => {
    // A failed start stays an error (the client may retry and stop again after our message).
    if (event.newState === State.Stopped && current.statusBar.state !== "error") current.statusBar.set("stopped");
  });
  return client;
}

/** Why `python` cannot run the server, in one line (or `undefined` when it imports fine). */
function diagnoseInterpreter(python: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(python, ["-c", "import lsp_server.server, model_runtime.cli"], { timeout: 30_000 }, (error, _out, err) => {
      if (!error) return resolve(undefined);
      const lines = String(err || error.message).trim().split("\n");
      resolve(lines[lines.length - 1]);
    });
  });
}

async function startClient(): Promise<void> {
  const current = state!;
  current.statusBar.set("starting");
  const choice = await choosePython(folderUri());
  current.python = choice;
  current.log.appendLine(`editseq: starting ${choice.python} ${SERVER_MODULE_ARGS.join(" ")} (interpreter from ${choice.source})`);
  const client = buildClient(choice.python);
  current.client = client;
  try {
    await client.start();
    if (current.statusBar.state === "starting") current.statusBar.set("idle");
  } catch (error) {
    const why = (await diagnoseInterpreter(choice.python)) ?? String((error as Error)?.message ?? error);
    const message =
      `editseq: the language server did not start with ${choice.python} (from ${choice.source}): ${why}. ` +
      "Install editseq into that interpreter (pip install -e /path/to/editseq) or set editseq.pythonPath.";
    current.statusBar.set("error", message);
    void vscode.window.showErrorMessage(message, "Open settings", "Show log").then((answer) => {
      if (answer === "Open settings") void vscode.commands.executeCommand("workbench.action.openSettings", "editseq.pythonPath");
      if (answer === "Show log") current.log.show();
    });
  }
}

async function stopClient(): Promise<void> {
  const current = state;
  const client = current?.client;
  if (!current || !client) return;
  current.client = undefined;
  current.runs.cancelAll();
  try {
    if (client.state !== State.Stopped) await client.stop();
  } catch (error) {
    current.log.appendLine(`editseq: stopping the server: ${String(error)}`);
  }
}

async function restart(): Promise<void> {
  const current = state;
  if (!current) return;
  const previous = current.starting ?? Promise.resolve();
  current.starting = previous.then(async () => {
    await stopClient();
    current.sentKeys.clear();
    await startClient();
  });
  await current.starting;
}

/** The command behind "editseq: Write function..." / "Refine function...": the function at the cursor. */
async function runAtCursor(action: "write" | "refine", options?: { pick?: StepPick }): Promise<unknown> {
  const current = state!;
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== "python") {
    void vscode.window.showWarningMessage("editseq: open a Python file and put the cursor inside a function");
    return undefined;
  }
  const position = editor.selection.active;
  return current.runs.execute(
    `editseq.${action}`,
    [editor.document.uri.toString(), { line: position.line, character: position.character }],
    options?.pick ?? "ask",
  );
}

function onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
  const current = state;
  if (!current) return;
  if (event.affectsConfiguration("editseq.pythonPath")) {
    void restart();
    return;
  }
  if (!SERVER_SETTING_KEYS.some((key) => event.affectsConfiguration(`editseq.${key}`))) return;
  const client = current.client;
  if (client && client.state === State.Running) {
    void client.sendNotification("workspace/didChangeConfiguration", { settings: { editseq: settingsForServer() } });
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<EditseqApi> {
  const log = vscode.window.createOutputChannel("editseq", { log: true });
  const statusBar = new StatusBar();
  const runs = new RunManager(() => state?.client);
  state = { context, log, statusBar, runs, sentKeys: new Set() };
  const current = state;
  context.subscriptions.push(
    log,
    statusBar,
    runs,
    vscode.commands.registerCommand("editseq.writeFunction", (options?: { pick?: StepPick }) => runAtCursor("write", options)),
    vscode.commands.registerCommand("editseq.refineFunction", (options?: { pick?: StepPick }) => runAtCursor("refine", options)),
    vscode.commands.registerCommand("editseq.cancel", () => {
      const n = runs.cancelAll();
      if (n === 0) void vscode.window.showInformationMessage("editseq: no run in progress");
      return n;
    }),
    vscode.commands.registerCommand("editseq.showTrajectory", () => runs.showLast()),
    vscode.commands.registerCommand("editseq.restartServer", () => restart()),
    vscode.commands.registerCommand("editseq.showServerLog", () => log.show()),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void restart()),
  );
  void onPythonInterpreterChange(() => {
    if (!vscode.workspace.getConfiguration("editseq").get<string>("pythonPath")) void restart();
  }).then((disposable) => disposable && context.subscriptions.push(disposable));

  current.starting = startClient();
  await current.starting;

  const api: EditseqApi = {
    client: () => current.client,
    python: () => current.python,
    statusBar,
    runs,
    restart,
  };
  const selftestOut = process.env[SELFTEST_ENV];
  if (selftestOut) {
    void runSelfTest(api, selftestOut);
  }
  return api;
}

export async function deactivate(): Promise<void> {
  await stopClient();
  state = undefined;
}
