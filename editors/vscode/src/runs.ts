/**
 * Long runs: the server's `editseq.write` / `editseq.refine` commands, sent with a cancellation
 * token of our own, so that "editseq: Cancel" stops them (`$/cancelRequest`, which the server turns
 * into a stop of the model and the tests), and recorded, so that "editseq: Show last run
 * trajectory" can show what happened.
 *
 * The server sends no trajectory of its own: it reports progress with `$/progress` (shown by the
 * language client in the status bar), its state with `editseq/status`, and returns a small result
 * (`{run, steps, verified, passed, total, summary}`); the run's edits are then offered as code
 * actions ("editseq: add step 1/2: ...", "editseq: add steps 1-2, ..."). The record here keeps
 * the request, the status changes during the run, the result, the step actions offered and the
 * one applied.
 */
import * as vscode from "vscode";
import type { LanguageClient, WorkspaceEdit as LspWorkspaceEdit } from "vscode-languageclient/node";

export const RUN_COMMANDS = new Set(["editseq.write", "editseq.refine"]);

/** What to do with the steps of a finished run: ask (quick pick), apply them all, or leave them as code actions. */
export type StepPick = "ask" | "last" | "none";

export interface RunRecord {
  command: string;
  arguments: unknown[];
  started: string;
  finished?: string;
  seconds?: number;
  outcome: "running" | "finished" | "cancelled" | "failed";
  result?: unknown;
  error?: { code?: number; message: string };
  statuses: { at: string; state: string; message: string }[];
  steps?: string[];
  applied?: string;
}

interface LspPosition {
  line: number;
  character: number;
}

interface LspCodeAction {
  title: string;
  kind?: string;
  isPreferred?: boolean;
  data?: { run?: string; k?: number } & Record<string, unknown>;
  edit?: unknown;
  command?: { title: string; command: string; arguments?: unknown[] };
}

/** JSON-RPC's RequestCancelled and LSP's ServerCancelled. */
const CANCELLED_CODES = new Set([-32800, -32802]);

function errorOf(error: unknown): { code?: number; message: string } {
  if (error && typeof error === "object") {
    const e = error as { code?: unknown; message?: unknown };
    return { code: typeof e.code === "number" ? e.code : undefined, message: String(e.message ?? error) };
  }
  return { message: String(error) };
}

export class RunManager implements vscode.Disposable {
  readonly records: RunRecord[] = [];
  /** How the steps of runs started from a code action (the server's own command) are offered. */
  defaultPick: StepPick = "ask";
  private readonly inFlight = new Map<RunRecord, vscode.CancellationTokenSource>();
  private readonly channel: vscode.OutputChannel;

  constructor(
    private readonly client: () => LanguageClient | undefined,
    channel?: vscode.OutputChannel,
  ) {
    this.channel = channel ?? vscode.window.createOutputChannel("editseq runs");
  }

  get last(): RunRecord | undefined {
    return this.records[this.records.length - 1];
  }

  get running(): number {
    return this.inFlight.size;
  }

  /** Records a status notification on every run in flight. */
  onStatus(params: { state?: string; message?: string } | undefined): void {
    const at = new Date().toISOString();
    for (const record of this.inFlight.keys()) {
      record.statuses.push({ at, state: String(params?.state ?? ""), message: String(params?.message ?? "") });
    }
  }

  /** Runs the server command `command(uri, position, ...)`; its result, or `undefined` if it failed or was cancelled. */
  async execute(command: string, args: unknown[], pick: StepPick = this.defaultPick): Promise<unknown> {
    const client = this.client();
    if (!client) {
      void vscode.window.showErrorMessage("editseq: the language server is not running (editseq: Restart language server)");
      return undefined;
    }
    const record: RunRecord = {
      command,
      arguments: args,
      started: new Date().toISOString(),
      outcome: "running",
      statuses: [],
    };
    this.records.push(record);
    if (this.records.length > 20) this.records.shift();
    const source = new vscode.CancellationTokenSource();
    this.inFlight.set(record, source);
    const t0 = Date.now();
    try {
      const result = await client.sendRequest("workspace/executeCommand", { command, arguments: args }, source.token);
      if (source.token.isCancellationRequested) {
        record.outcome = "cancelled";
        return undefined;
      }
      record.outcome = "finished";
      record.result = result;
      const steps = (result as { steps?: number } | null)?.steps;
      if (steps === 0) {
        const summary = (result as { summary?: string }).summary ?? "";
        void vscode.window.showWarningMessage(`editseq: the model proposed no usable edit (${summary})`);
      }
      return result;
    } catch (error) {
      const e = errorOf(error);
      record.error = e;
      if (source.token.isCancellationRequested || (e.code !== undefined && CANCELLED_CODES.has(e.code))) {
        record.outcome = "cancelled";
        void vscode.window.showInformationMessage(`editseq: ${command.replace("editseq.", "")} cancelled`);
      } else {
        record.outcome = "failed";
        void vscode.window.showErrorMessage(e.message.startsWith("editseq") ? e.message : `editseq: ${e.message}`);
      }
      return undefined;
    } finally {
      record.finished = new Date().toISOString();
      record.seconds = (Date.now() - t0) / 1000;
      this.inFlight.delete(record);
      source.dispose();
      if (record.outcome === "finished") await this.offerSteps(record, pick);
    }
  }

  /** Cancels every run in flight; how many there were. */
  cancelAll(): number {
    const n = this.inFlight.size;
    for (const source of this.inFlight.values()) source.cancel();
    return n;
  }

  /** Offers the finished run's steps (code actions carrying its run id) and applies the one picked. */
  async offerSteps(record: RunRecord, pick: StepPick): Promise<void> {
    const result = record.result as { run?: string; steps?: number } | undefined;
    const client = this.client();
    const [uri, position] = record.arguments as [string, LspPosition];
    if (!client || !result?.run || !result.steps || typeof uri !== "string" || !position) return;
    let actions: (LspCodeAction | { command: string })[] | null;
    try {
      actions = await client.sendRequest("textDocument/codeAction", {
        textDocument: { uri },
        range: { start: position, end: position },
        context: { diagnostics: [], triggerKind: 1 },
      });
    } catch (error) {
      record.error = errorOf(error);
      return;
    }
    const steps = (actions ?? []).filter(
      (a): a is LspCodeAction => "title" in a && (a as LspCodeAction).data?.run === result.run,
    );
    record.steps = steps.map((a) => a.title);
    if (steps.length === 0 || pick === "none") return;
    let chosen: LspCodeAction | undefined;
    if (pick === "last") {
      chosen = steps[steps.length - 1];
    } else {
      const items = [...steps].reverse().map((action) => ({
        label: action.title.replace(/^editseq: /, ""),
        description: action.isPreferred ? "verified" : undefined,
        action,
      }));
      const picked = await vscode.window.showQuickPick(items, {
        title: "editseq: apply steps of the run (Escape: keep them in the code actions, Ctrl+.)",
        placeHolder: String((result as { summary?: string }).summary ?? ""),
      });
      chosen = picked?.action;
    }
    if (chosen) await this.applyStep(record, chosen);
  }

  private async applyStep(record: RunRecord, action: LspCodeAction): Promise<void> {
    const client = this.client();
    if (!client) return;
    try {
      const resolved: LspCodeAction = action.edit ? action : await client.sendRequest("codeAction/resolve", action);
      if (!resolved.edit) throw new Error("the server returned no edit for this step");
      const edit = await client.protocol2CodeConverter.asWorkspaceEdit(resolved.edit as LspWorkspaceEdit);
      if (!(await vscode.workspace.applyEdit(edit))) throw new Error("VS Code refused the edit (the document changed?)");
      record.applied = action.title;
    } catch (error) {
      const e = errorOf(error);
      record.error = e;
      void vscode.window.showErrorMessage(e.message.startsWith("editseq") ? e.message : `editseq: ${e.message}`);
    }
  }

  /** The last run as JSON in the "editseq runs" output channel. */
  showLast(): RunRecord | undefined {
    const record = this.last;
    this.channel.clear();
    if (!record) {
      this.channel.appendLine("No editseq run yet in this window.");
    } else {
      this.channel.appendLine(`editseq: last run (${record.command}, ${record.outcome})`);
      this.channel.appendLine(JSON.stringify(record, null, 2));
    }
    this.channel.show(true);
    return record;
  }

  dispose(): void {
    this.cancelAll();
    this.channel.dispose();
  }
}
