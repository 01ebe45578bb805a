/**
 * A stand-in for the `vscode` module (which exists only inside VS Code's extension host) and for
 * `vscode-languageclient/node` (whose LanguageClient would spawn the server): both are replaced
 * through `Module._load`, and record what the extension does with them. Everything else (the
 * extension's own modules, Node, package.json) is real.
 */
import * as fs from "node:fs";
import * as path from "node:path";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Module = require("node:module") as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };

export const ROOT = path.resolve(__dirname, "..", "..");
export const PACKAGE = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));

type Listener<T> = (value: T) => unknown;

export class Disposable {
  constructor(private readonly fn: () => void = () => {}) {}
  dispose(): void {
    this.fn();
  }
}

export class CancellationTokenSource {
  private listeners: Listener<void>[] = [];
  token = {
    isCancellationRequested: false,
    onCancellationRequested: (listener: Listener<void>) => {
      this.listeners.push(listener);
      return new Disposable();
    },
  };
  cancel(): void {
    if (this.token.isCancellationRequested) return;
    this.token.isCancellationRequested = true;
    for (const listener of this.listeners) listener();
  }
  dispose(): void {}
}

export class Uri {
  constructor(readonly scheme: string, readonly fsPath: string) {}
  static file(p: string): Uri {
    return new Uri("file", p);
  }
  static parse(s: string): Uri {
    return s.startsWith("file://") ? new Uri("file", decodeURIComponent(s.slice(7))) : new Uri("other", s);
  }
  toString(): string {
    return `${this.scheme}://${this.fsPath}`;
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export interface FakeClient {
  id: string;
  name: string;
  serverOptions: any;
  clientOptions: any;
  state: number;
  started: number;
  stopped: number;
  notifications: Map<string, (params: unknown) => void>;
  stateListeners: Listener<{ oldState: number; newState: number }>[];
  sent: { method: string; params: unknown }[];
  requests: { method: string; params: any; token?: any }[];
  [key: string]: any;
}

/** The recorder: what the extension did, and knobs for what the host answers. */
export const host = {
  settings: {} as Record<string, unknown>, // user-set `editseq.*` values (key without the prefix)
  commands: new Map<string, (...args: any[]) => unknown>(),
  statusItems: [] as any[],
  channels: [] as any[],
  messages: [] as { level: string; text: string }[],
  configListeners: [] as Listener<{ affectsConfiguration(section: string): boolean }>[],
  trusted: false,
  trustListeners: [] as Listener<void>[],
  clients: [] as FakeClient[],
  extensions: {} as Record<string, unknown>,
  activeTextEditor: undefined as unknown,
  workspaceFolders: [{ uri: Uri.file("/ws"), name: "ws", index: 0 }] as unknown[],
  appliedEdits: [] as unknown[],
  quickPick: (items: any[]) => items[0] as unknown,
  /** Answers the client's requests: (method, params, token) => result (or a promise). */
  onRequest: (_method: string, _params: any, _token?: any): unknown => null,
  startError: undefined as Error | undefined,
  reset(): void {
    this.settings = {};
    this.commands.clear();
    this.statusItems = [];
    this.channels = [];
    this.messages = [];
    this.configListeners = [];
    this.trusted = false;
    this.trustListeners = [];
    this.clients = [];
    this.extensions = {};
    this.activeTextEditor = undefined;
    this.workspaceFolders = [{ uri: Uri.file("/ws"), name: "ws", index: 0 }];
    this.appliedEdits = [];
    this.quickPick = (items) => items[0];
    this.onRequest = () => null;
    this.startError = undefined;
  },
  /** Changes `editseq.<key>` settings and fires onDidChangeConfiguration as VS Code does. */
  changeSettings(changes: Record<string, unknown>): void {
    for (const [key, value] of Object.entries(changes)) {
      if (value === undefined) delete this.settings[key];
      else this.settings[key] = value;
    }
    const event = {
      affectsConfiguration: (section: string) =>
        section === "editseq" || Object.keys(changes).some((key) => section === `editseq.${key}`),
    };
    for (const listener of this.configListeners) listener(event);
  },
  /** Grants Workspace Trust and fires onDidGrantWorkspaceTrust as VS Code does. */
  grantTrust(): void {
    this.trusted = true;
    for (const listener of this.trustListeners) listener(undefined);
  },
  get client(): FakeClient {
    return this.clients[this.clients.length - 1];
  },
};

const properties = PACKAGE.contributes.configuration.properties as Record<string, { default?: unknown }>;

function configuration(section?: string) {
  const full = (key: string) => (section ? `${section}.${key}` : key);
  const userKey = (key: string) => full(key).replace(/^editseq\./, "");
  return {
    get(key: string, fallback?: unknown) {
      const name = full(key);
      if (name.startsWith("editseq.") && userKey(key) in host.settings) return host.settings[userKey(key)];
      return properties[name]?.default ?? fallback;
    },
    inspect(key: string) {
      const name = full(key);
      if (!(name in properties)) return undefined;
      const set = userKey(key) in host.settings;
      return { key: name, defaultValue: properties[name].default, globalValue: set ? host.settings[userKey(key)] : undefined };
    },
    has(key: string) {
      return full(key) in properties;
    },
    update() {
      return Promise.resolve();
    },
  };
}

function message(level: string) {
  return (text: string) => {
    host.messages.push({ level, text });
    return Promise.resolve(undefined);
  };
}

export const vscodeStub = {
  Disposable,
  CancellationTokenSource,
  Uri,
  ThemeColor,
  StatusBarAlignment: { Left: 1, Right: 2 },
  Range: class {
    constructor(readonly start: unknown, readonly end: unknown) {}
  },
  Selection: class {},
  window: {
    createOutputChannel(name: string, options?: unknown) {
      const channel = {
        name,
        options,
        lines: [] as string[],
        shown: 0,
        appendLine(line: string) {
          this.lines.push(line);
        },
        append(text: string) {
          this.lines.push(text);
        },
        info(text: string) {
          this.lines.push(text);
        },
        clear() {
          this.lines = [];
        },
        show() {
          this.shown += 1;
        },
        dispose() {},
      };
      host.channels.push(channel);
      return channel;
    },
    createStatusBarItem(id: string, alignment: number, priority: number) {
      const item = { id, alignment, priority, text: "", tooltip: "", shown: false, disposed: false,
        show() { this.shown = true; }, hide() { this.shown = false; }, dispose() { this.disposed = true; } } as any;
      host.statusItems.push(item);
      return item;
    },
    showErrorMessage: message("error"),
    showWarningMessage: message("warning"),
    showInformationMessage: message("info"),
    showQuickPick: (items: any[]) => Promise.resolve(host.quickPick(items)),
    get activeTextEditor() {
      return host.activeTextEditor;
    },
  },
  commands: {
    registerCommand(id: string, fn: (...args: any[]) => unknown) {
      if (host.commands.has(id)) throw new Error(`command '${id}' already exists`);
      host.commands.set(id, fn);
      return new Disposable(() => host.commands.delete(id));
    },
    executeCommand(id: string, ...args: unknown[]) {
      const fn = host.commands.get(id);
      return Promise.resolve(fn ? fn(...args) : undefined);
    },
  },
  workspace: {
    getConfiguration: (section?: string) => configuration(section),
    onDidChangeConfiguration(listener: Listener<any>) {
      host.configListeners.push(listener);
      return new Disposable(() => host.configListeners.splice(host.configListeners.indexOf(listener), 1));
    },
    get workspaceFolders() {
      return host.workspaceFolders;
    },
    /** VS Code's Workspace Trust: false until the test grants it. */
    get isTrusted() {
      return host.trusted;
    },
    onDidGrantWorkspaceTrust(listener: Listener<void>) {
      host.trustListeners.push(listener);
      return new Disposable(() => host.trustListeners.splice(host.trustListeners.indexOf(listener), 1));
    },
    applyEdit(edit: unknown) {
      host.appliedEdits.push(edit);
      return Promise.resolve(true);
    },
  },
  extensions: {
    getExtension: (id: string) => host.extensions[id],
  },
};

export const State = { Stopped: 1, Running: 2, Starting: 3 };

class LanguageClient {
  state = State.Stopped;
  started = 0;
  stopped = 0;
  notifications = new Map<string, (params: unknown) => void>();
  stateListeners: Listener<{ oldState: number; newState: number }>[] = [];
  sent: { method: string; params: unknown }[] = [];
  requests: { method: string; params: any; token?: any }[] = [];
  protocol2CodeConverter = { asWorkspaceEdit: async (edit: unknown) => ({ converted: edit }) };

  constructor(readonly id: string, readonly name: string, readonly serverOptions: any, readonly clientOptions: any) {
    host.clients.push(this as unknown as FakeClient);
  }
  private setState(newState: number) {
    const oldState = this.state;
    this.state = newState;
    for (const listener of this.stateListeners) listener({ oldState, newState });
  }
  async start() {
    this.started += 1;
    if (host.startError) {
      this.setState(State.Stopped);
      throw host.startError;
    }
    this.setState(State.Running);
  }
  async stop() {
    this.stopped += 1;
    this.setState(State.Stopped);
  }
  isRunning() {
    return this.state === State.Running;
  }
  onNotification(method: string, handler: (params: unknown) => void) {
    this.notifications.set(method, handler);
    return new Disposable();
  }
  onDidChangeState(listener: Listener<{ oldState: number; newState: number }>) {
    this.stateListeners.push(listener);
    return new Disposable();
  }
  async sendNotification(method: string, params: unknown) {
    this.sent.push({ method, params });
  }
  async sendRequest(method: string, params: unknown, token?: unknown) {
    this.requests.push({ method, params, token });
    return host.onRequest(method, params, token);
  }
}

export const languageClientStub = { LanguageClient, State };

let installed = false;
/** Replaces `vscode` and `vscode-languageclient/node` for every later `require`. */
export function installStubs(): void {
  if (installed) return;
  installed = true;
  const original = Module._load;
  Module._load = function (request: string, parent: unknown, isMain: boolean) {
    if (request === "vscode") return vscodeStub;
    if (request === "vscode-languageclient/node") return languageClientStub;
    return original.call(this, request, parent, isMain);
  };
}
