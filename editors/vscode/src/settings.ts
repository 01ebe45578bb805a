/**
 * The server's settings as VS Code settings.
 *
 * The server (lsp_server/settings.py) takes one flat camelCase object, in `initializationOptions`
 * and as the `editseq` section of `workspace/configuration` / `workspace/didChangeConfiguration`.
 * The `editseq.*` settings of this extension mirror it key for key; `pythonPath` and `trace` are
 * the client's own and never reach the server (it would warn about an unknown setting).
 *
 * Only values the user set (in any scope) are sent, so that `[tool.editseq]` in the workspace's
 * pyproject.toml and the server's own defaults still apply to everything else. A key that was
 * sent once and is later removed is sent again with its default, so the server forgets the old value.
 */
import type * as vscode from "vscode";

/** The server's setting names (lsp_server/settings.py `Settings`), as the `editseq.*` keys. */
export const SERVER_SETTING_KEYS = [
  "model",
  "backend",
  "endpoint",
  "device",
  "format",
  "strategy",
  "verify",
  "rounds",
  "candidates",
  "maxNewTokens",
  "temperature",
  "timeout",
  "python",
  "testCommand",
  "resolveTimeout",
] as const;

export type ServerSettingKey = (typeof SERVER_SETTING_KEYS)[number];
export type ServerSettings = Partial<Record<ServerSettingKey, unknown>>;

type Inspected = {
  defaultValue?: unknown;
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
  globalLanguageValue?: unknown;
  workspaceLanguageValue?: unknown;
  workspaceFolderLanguageValue?: unknown;
};

function isSet(inspected: Inspected | undefined): boolean {
  if (!inspected) return false;
  return [
    inspected.globalValue,
    inspected.workspaceValue,
    inspected.workspaceFolderValue,
    inspected.globalLanguageValue,
    inspected.workspaceLanguageValue,
    inspected.workspaceFolderLanguageValue,
  ].some((value) => value !== undefined);
}

/**
 * The settings object for the server: every `editseq.*` server key the user set, plus the default
 * of every key in `previouslySent` that is no longer set.
 */
export function serverSettings(
  config: Pick<vscode.WorkspaceConfiguration, "get" | "inspect">,
  previouslySent: Iterable<string> = [],
): ServerSettings {
  const out: ServerSettings = {};
  const before = new Set(previouslySent);
  for (const key of SERVER_SETTING_KEYS) {
    const inspected = config.inspect(key) as Inspected | undefined;
    if (isSet(inspected)) {
      const value = config.get(key);
      if (value !== undefined && value !== null) out[key] = value;
    } else if (before.has(key) && inspected?.defaultValue !== undefined) {
      out[key] = inspected.defaultValue;
    }
  }
  return out;
}
