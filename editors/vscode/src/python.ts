/**
 * Which Python runs the server: `editseq.pythonPath`, else the interpreter selected in the
 * Python extension (ms-python.python) if it is installed, else `python3`.
 */
import * as vscode from "vscode";

export const FALLBACK_PYTHON = "python3";

export interface PythonChoice {
  python: string;
  source: "editseq.pythonPath" | "ms-python.python" | "default";
}

/* The parts of the Python extension's API used here (both its current and its legacy shape). */
interface PythonApi {
  environments?: {
    getActiveEnvironmentPath?(resource?: vscode.Uri): { id?: string; path: string } | undefined;
    resolveEnvironment?(
      env: { id?: string; path: string } | string,
    ): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
  settings?: {
    getExecutionDetails?(resource?: vscode.Uri): { execCommand?: string[] } | undefined;
  };
}

async function pythonApi(): Promise<PythonApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonApi>("ms-python.python");
  if (!extension) return undefined;
  try {
    return extension.isActive ? extension.exports : await extension.activate();
  } catch {
    return undefined;
  }
}

/** The interpreter the Python extension has selected for `resource`, if any. */
export async function pythonFromPythonExtension(resource?: vscode.Uri): Promise<string | undefined> {
  const api = await pythonApi();
  if (!api) return undefined;
  try {
    const active = api.environments?.getActiveEnvironmentPath?.(resource);
    if (active) {
      const resolved = await api.environments?.resolveEnvironment?.(active);
      const executable = resolved?.executable?.uri?.fsPath;
      if (executable) return executable;
      if (active.path) return active.path;
    }
    const command = api.settings?.getExecutionDetails?.(resource)?.execCommand;
    if (command && command.length > 0 && command[0]) return command[0];
  } catch {
    // A broken or half-activated Python extension must not stop editseq: fall through.
  }
  return undefined;
}

/** `${workspaceFolder}`, `${userHome}` and a leading `~` expanded (VS Code does not expand settings). */
export function expandPath(value: string, folder?: vscode.Uri): string {
  const home = process.env.HOME ?? "";
  let out = value.replace(/^~(?=\/|$)/, home).replace(/\$\{userHome\}/g, home);
  if (folder?.scheme === "file") out = out.replace(/\$\{workspaceFolder\}/g, folder.fsPath);
  return out;
}

export async function choosePython(resource?: vscode.Uri): Promise<PythonChoice> {
  const configured = expandPath(
    (vscode.workspace.getConfiguration("editseq", resource).get<string>("pythonPath") ?? "").trim(),
    resource,
  );
  if (configured) return { python: configured, source: "editseq.pythonPath" };
  const fromExtension = await pythonFromPythonExtension(resource);
  if (fromExtension) return { python: fromExtension, source: "ms-python.python" };
  return { python: FALLBACK_PYTHON, source: "default" };
}

/** Calls `listener` when the Python extension's selected interpreter changes (if it is installed). */
export async function onPythonInterpreterChange(listener: () => void): Promise<vscode.Disposable | undefined> {
  const api = await pythonApi();
  const event = api?.environments?.onDidChangeActiveEnvironmentPath;
  return event ? event(() => listener()) : undefined;
}
