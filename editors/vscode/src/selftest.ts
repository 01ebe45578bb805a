/**
 * The end-to-end self-test, run inside a real VS Code extension host (code-server) when the
 * environment variable EDITSEQ_VSCODE_SELFTEST_OUT names a file; `npm run e2e` sets it. It drives
 * the real extension, client and server the way a user would and writes its findings as JSON.
 *
 * The workspace (made by e2e/run.mjs) has two files with a docstring-only function each, FIRST
 * and SECOND. Checks: the client starts; the commands exist; the code actions in FIRST include
 * "editseq: write FIRST edit by edit" (kind refactor.rewrite.editseq); running it (resolve, then
 * its edit or its command, as the lightbulb does) writes a body into FIRST; "editseq: Write
 * function edit by edit" in SECOND writes SECOND; with editseq.resolveTimeout changed to 0 (sent
 * with didChangeConfiguration), the code action in THIRD resolves to the server's `editseq.write`
 * command instead of an edit, and running it (through the client's command and this extension's
 * run manager) writes THIRD; the status bar went through the server's states;
 * the last run's record is there; the saved file on disk has both bodies.
 */
import { promises as fs } from "node:fs";
import * as vscode from "vscode";
import { State } from "vscode-languageclient/node";

import type { EditseqApi } from "./extension";

/**
 * The workspace's three files, each with one docstring-only function (e2e/run.mjs writes them).
 * The e2e's model is the tiny LintSeq model trained on a sample of the standard library: these
 * three (collections.abc's Set.isdisjoint and .remove, MutableMapping.clear) are among what it
 * learnt to write, when they are alone in their module (no "context from the same module" in the prompt).
 */
export const FIRST = { file: "sets.py", name: "isdisjoint" }; // written through the code action (lightbulb)
export const SECOND = { file: "mapping.py", name: "clear" }; // through "editseq: Write function edit by edit"
/** Written through the code action after `editseq.resolveTimeout` is set to 0: resolve hands the run to the command. */
export const THIRD = { file: "removal.py", name: "remove" };

interface Check {
  name: string;
  ok: boolean;
  detail?: unknown;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: () => T | undefined | false, seconds: number): Promise<T | undefined> {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const value = what();
    if (value) return value;
    if (Date.now() > end) return undefined;
    await sleep(100);
  }
}

/** The lines of the function (or method) `name` after its docstring: its body, from `text`. */
export function bodyAfterDocstring(text: string, name: string): string[] {
  const lines = text.split("\n");
  const start = lines.findIndex((line) => line.trimStart().startsWith(`def ${name}(`));
  if (start < 0) return [];
  const indent = lines[start].length - lines[start].trimStart().length;
  const body: string[] = [];
  let i = start + 1;
  if (lines[i]?.trim().startsWith('"""')) i += 1;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    if (line.length - line.trimStart().length <= indent) break;
    body.push(line);
  }
  return body;
}

function lineOf(doc: vscode.TextDocument, prefix: string): number {
  for (let i = 0; i < doc.lineCount; i++) if (doc.lineAt(i).text.trimStart().startsWith(prefix)) return i;
  return -1;
}

export async function runSelfTest(api: EditseqApi, outPath: string): Promise<void> {
  const checks: Check[] = [];
  const report: Record<string, unknown> = { checks };
  const check = (name: string, ok: boolean, detail?: unknown) => checks.push({ name, ok, detail });
  const started = Date.now();
  await fs.writeFile(outPath + ".started", new Date().toISOString());
  try {
    api.runs.defaultPick = "last"; // no quick pick in a headless run: apply all steps
    const running = await until(() => api.client()?.state === State.Running, 60);
    check("client running", Boolean(running), { python: api.python(), status: api.statusBar.message });
    if (!running) throw new Error(`the language server is not running: ${api.statusBar.message}`);

    const commands = await vscode.commands.getCommands(true);
    const wanted = ["editseq.writeFunction", "editseq.refineFunction", "editseq.cancel", "editseq.showTrajectory",
      "editseq.write", "editseq.refine"];
    check("commands registered", wanted.every((c) => commands.includes(c)), wanted.filter((c) => !commands.includes(c)));

    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder) throw new Error("no workspace folder open");
    const uri = vscode.Uri.joinPath(folder.uri, FIRST.file);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    report.before = doc.getText();

    // 1. The lightbulb's way: list the code actions in FIRST, resolve the editseq one, run it.
    const firstLine = lineOf(doc, `def ${FIRST.name}(`);
    const at = new vscode.Range(firstLine + 1, 4, firstLine + 1, 4);
    let actions: vscode.CodeAction[] = [];
    const listEnd = Date.now() + 30_000;
    while (Date.now() < listEnd) {
      actions = (await vscode.commands.executeCommand<vscode.CodeAction[]>("vscode.executeCodeActionProvider", uri, at)) ?? [];
      if (actions.some((a) => a.title.startsWith("editseq:"))) break;
      await sleep(250);
    }
    report.titles = actions.map((a) => `${a.title} [${a.kind?.value}]`);
    const write = actions.find((a) => a.title === `editseq: write ${FIRST.name} edit by edit`);
    check("write action offered", Boolean(write) && write?.kind?.value === "refactor.rewrite.editseq", report.titles);

    if (write) {
      const t0 = Date.now();
      const resolvedList =
        (await vscode.commands.executeCommand<vscode.CodeAction[]>(
          "vscode.executeCodeActionProvider", uri, at, "refactor.rewrite.editseq", 1,
        )) ?? [];
      const resolved = resolvedList.find((a) => a.title === write.title);
      check("write action resolved", Boolean(resolved && (resolved.edit || resolved.command)), {
        edit: Boolean(resolved?.edit), command: resolved?.command?.command,
      });
      if (resolved?.edit) {
        report.writePath = "resolved edit";
        check("resolved edit applied", await vscode.workspace.applyEdit(resolved.edit));
      }
      if (resolved?.command) {
        report.writePath = report.writePath ? "resolved edit + command" : "command (resolve took longer than resolveTimeout)";
        report.commandResult = await vscode.commands.executeCommand(resolved.command.command, ...(resolved.command.arguments ?? []));
      }
      report.writeSeconds = (Date.now() - t0) / 1000;
      const body = bodyAfterDocstring(doc.getText(), FIRST.name);
      check(`${FIRST.name} has a body`, body.length > 0, body);
      report.firstSteps = (await vscode.commands.executeCommand<vscode.CodeAction[]>(
        "vscode.executeCodeActionProvider", uri, at) ?? []).map((a) => a.title);
    }
    check("saved", await doc.save());

    // 2. The command palette's way: "editseq: Write function edit by edit" with the cursor in SECOND.
    const uri2 = vscode.Uri.joinPath(folder.uri, SECOND.file);
    const doc2 = await vscode.workspace.openTextDocument(uri2);
    const editor2 = await vscode.window.showTextDocument(doc2);
    const secondLine = lineOf(doc2, `def ${SECOND.name}(`);
    editor2.selection = new vscode.Selection(secondLine + 1, 4, secondLine + 1, 4);
    const t1 = Date.now();
    const result = (await vscode.commands.executeCommand("editseq.writeFunction", { pick: "last" })) as
      | { run?: string; steps?: number; summary?: string }
      | undefined;
    report.secondSeconds = (Date.now() - t1) / 1000;
    report.secondResult = result;
    check("write command returned a run", Boolean(result?.run) && (result?.steps ?? 0) > 0, result);
    const secondBody = bodyAfterDocstring(doc2.getText(), SECOND.name);
    check(`${SECOND.name} has a body`, secondBody.length > 0, secondBody);
    check("saved (2)", await doc2.save());

    // 3. A settings change reaches the server: with resolveTimeout 0, resolve hands the run to its
    //    command (`editseq.write`, registered by the language client), which VS Code then runs.
    await vscode.workspace.getConfiguration("editseq").update("resolveTimeout", 0, vscode.ConfigurationTarget.Global);
    await sleep(500);
    const uri3 = vscode.Uri.joinPath(folder.uri, THIRD.file);
    const doc3 = await vscode.workspace.openTextDocument(uri3);
    await vscode.window.showTextDocument(doc3);
    const thirdLine = lineOf(doc3, `def ${THIRD.name}(`);
    const at3 = new vscode.Range(thirdLine + 1, 4, thirdLine + 1, 4);
    const resolved3 = ((await vscode.commands.executeCommand<vscode.CodeAction[]>(
      "vscode.executeCodeActionProvider", uri3, at3, "refactor.rewrite.editseq", 1,
    )) ?? []).find((a) => a.title === `editseq: write ${THIRD.name} edit by edit`);
    check("resolveTimeout 0 hands the run to the editseq.write command", !resolved3?.edit &&
      resolved3?.command?.command === "editseq.write", { edit: Boolean(resolved3?.edit), command: resolved3?.command });
    if (resolved3?.command) {
      const t2 = Date.now();
      report.thirdResult = await vscode.commands.executeCommand(resolved3.command.command, ...(resolved3.command.arguments ?? []));
      report.thirdSeconds = (Date.now() - t2) / 1000;
    }
    const thirdBody = bodyAfterDocstring(doc3.getText(), THIRD.name);
    check(`${THIRD.name} has a body`, thirdBody.length > 0, thirdBody);
    check("saved (3)", await doc3.save());

    // 4. The last run's trajectory, the status bar, the file on disk.
    const last = (await vscode.commands.executeCommand("editseq.showTrajectory")) as
      | { command?: string; outcome?: string; applied?: string; steps?: string[] }
      | undefined;
    check("trajectory of the last run", last?.command === "editseq.write" && last?.outcome === "finished" &&
      Boolean(last?.applied), last);
    const states = api.statusBar.history.map((s) => s.state);
    report.statuses = api.statusBar.history;
    check("status notifications", states.includes("loading") && states.includes("ready") && states.includes("busy"), states);
    check("status bar shows ready", api.statusBar.state === "ready", api.statusBar.item.text);

    const onDisk = await fs.readFile(uri.fsPath, "utf8");
    const onDisk2 = await fs.readFile(uri2.fsPath, "utf8");
    const onDisk3 = await fs.readFile(uri3.fsPath, "utf8");
    report.after = { [FIRST.file]: onDisk, [SECOND.file]: onDisk2, [THIRD.file]: onDisk3 };
    check("files on disk changed", onDisk !== report.before && bodyAfterDocstring(onDisk, FIRST.name).length > 0 &&
      bodyAfterDocstring(onDisk2, SECOND.name).length > 0 && bodyAfterDocstring(onDisk3, THIRD.name).length > 0);
  } catch (error) {
    check("no exception", false, String((error as Error)?.stack ?? error));
  }
  report.status = { state: api.statusBar.state, message: api.statusBar.message, text: api.statusBar.item.text };
  report.seconds = (Date.now() - started) / 1000;
  report.ok = checks.length > 0 && checks.every((c) => c.ok);
  await fs.writeFile(outPath + ".tmp", JSON.stringify(report, null, 2));
  await fs.rename(outPath + ".tmp", outPath);
}
