/** The status bar item, fed by the server's `editseq/status` notification. */
import * as vscode from "vscode";

export const STATUS_NOTIFICATION = "editseq/status";

export type ServerState = "starting" | "idle" | "loading" | "ready" | "busy" | "error" | "stopped";

export interface StatusParams {
  state?: string;
  message?: string;
}

const LOOK: Record<ServerState, { icon: string; label: string; command?: string }> = {
  starting: { icon: "$(sync~spin)", label: "starting", command: "editseq.showServerLog" },
  idle: { icon: "$(circle-outline)", label: "", command: "editseq.showTrajectory" },
  loading: { icon: "$(sync~spin)", label: "loading model", command: "editseq.showServerLog" },
  ready: { icon: "$(check)", label: "", command: "editseq.showTrajectory" },
  busy: { icon: "$(loading~spin)", label: "busy", command: "editseq.cancel" },
  error: { icon: "$(error)", label: "error", command: "editseq.showServerLog" },
  stopped: { icon: "$(debug-stop)", label: "stopped", command: "editseq.restartServer" },
};

const TOOLTIP: Record<ServerState, string> = {
  starting: "editseq: starting the language server",
  idle: "editseq: ready (the model loads on first use)",
  loading: "editseq: loading the model",
  ready: "editseq: model ready. Click to show the last run.",
  busy: "editseq: a run is in progress. Click to cancel.",
  error: "editseq: error. Click to show the server log.",
  stopped: "editseq: the language server is not running. Click to restart it.",
};

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  state: ServerState = "starting";
  message = "";
  /** Every state seen, in order (the e2e self-test reads it). */
  readonly history: { state: string; message: string }[] = [];

  constructor() {
    this.item = vscode.window.createStatusBarItem("editseq.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "editseq";
    this.set("starting");
    this.item.show();
  }

  /** Handles one `editseq/status` notification; unknown states are shown as they are. */
  onNotification(params: StatusParams | undefined): void {
    const state = String(params?.state ?? "");
    const message = String(params?.message ?? "");
    this.history.push({ state, message });
    this.set(state in LOOK ? (state as ServerState) : "ready", message, state in LOOK ? undefined : state);
  }

  set(state: ServerState, message = "", rawState?: string): void {
    this.state = state;
    this.message = message;
    const look = LOOK[state];
    const label = rawState ?? look.label;
    this.item.text = `${look.icon} editseq${label ? ": " + label : ""}`;
    this.item.tooltip = message ? `${TOOLTIP[state]}\n${message}` : TOOLTIP[state];
    this.item.command = look.command;
    this.item.backgroundColor =
      state === "error" ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
