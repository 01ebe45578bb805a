--- editseq for Neovim: the editseq language server's code actions, commands and progress.
---
--- require("editseq").setup({
---   cmd = { "editseq", "serve" },          -- the server command
---   settings = { model = "/path/to/model" }, -- the server's settings (flat, camelCase)
--- })
---
--- Neovim 0.11+ registers the server with vim.lsp.config/vim.lsp.enable; older versions (0.8+)
--- start it with vim.lsp.start from a FileType autocmd. The settings go to the server twice, as
--- the server expects: as initializationOptions and as the `editseq` section answered to
--- workspace/configuration (and pushed with workspace/didChangeConfiguration).

local M = {}

M.name = "editseq"

--- The settings the server knows (lsp_server/settings.py), with the Lua type each one takes.
M.known_settings = {
  model = "string",
  backend = "string",
  endpoint = "string",
  device = "string",
  format = "string",
  strategy = "string",
  verify = "string",
  rounds = "number",
  candidates = "number",
  maxNewTokens = "number",
  temperature = "number",
  timeout = "number",
  python = "string",
  testCommand = "string",
  resolveTimeout = "number",
  reportPollInterval = "number",
  maxFileBytes = "number",
}

local defaults = {
  cmd = { "editseq", "serve" },
  settings = {},
  filetypes = { "python" },
  root_markers = { "pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", ".git" },
  -- What :EditseqWrite / :EditseqRefine do with a finished run's steps:
  -- "select" offers them with vim.ui.select, "apply" applies all of them, "none" only reports.
  on_result = "select",
  -- Show $/progress of the editseq server (begin/report/end) and its editseq/status.
  progress = true,
  -- true: use vim.lsp.config/vim.lsp.enable when available (0.11+); false: always vim.lsp.start.
  lsp_config = true,
  -- true: a workspace's pyproject.toml [tool.editseq] may choose the model, backend, endpoint, python
  -- and testCommand (only for folders you trust: they decide what runs and where your code is sent).
  trust_workspace = false,
}

M.config = nil

--- Last editseq/status per client id: { state = "ready", message = "..." }.
M.statuses = {}

--- Progress tokens of the editseq server in flight: [client_id][token] = title.
M.active = {}

--- editseq commands in flight: [client_id][request_id] = { command, token, settle }.
--- Neovim never hands a RequestCancelled (-32800) reply to the request's handler (vim/lsp/rpc.lua:
--- "it is RPC-internal"), and the server answers a cancelled run with exactly that; so a cancelled
--- command is settled here: at once by :EditseqCancel, or shortly after its progress ends unanswered.
M.pending = {}

--- Milliseconds to wait for a command's reply after its progress ended before calling it cancelled.
M.reply_grace_ms = 2000

local has_011 = vim.fn.has("nvim-0.11") == 1

local function notify(msg, level)
  vim.notify(msg, level or vim.log.levels.INFO, { title = "editseq" })
end

--- Call a client method on 0.11 (method syntax) and older releases (function fields).
local function call(client, method, ...)
  if has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

local function get_clients(filter)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients(filter)
  end
  return vim.lsp.get_active_clients(filter)
end

--- The settings object as sent on the wire: an empty table must still be a JSON object.
local function wire_settings(settings)
  local out = vim.deepcopy(settings or {})
  if next(out) == nil then
    return vim.empty_dict()
  end
  return out
end

local function buf_root(bufnr, markers)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" then
    return nil
  end
  local root
  if vim.fs.root then
    root = vim.fs.root(bufnr, markers)
  else
    local found = vim.fs.find(markers, { path = vim.fs.dirname(name), upward = true })[1]
    root = found and vim.fs.dirname(found)
  end
  -- The server runs tests from a workspace folder, so a file outside any project gets its own folder.
  return root or vim.fs.dirname(name)
end

-- Status and progress ------------------------------------------------------------------------

local function is_editseq(client_id)
  local client = vim.lsp.get_client_by_id(client_id)
  return client ~= nil and client.name == M.name
end

--- The handler for the server's editseq/status notification.
function M.on_status(_, result, ctx)
  if type(result) ~= "table" then
    return
  end
  local previous = M.statuses[ctx.client_id]
  M.statuses[ctx.client_id] = {
    state = result.state,
    message = result.message or "",
    -- A load in progress: its end ("ready" after "busy" runs that waited for it) is worth a message.
    loading = result.state == "loading" or (previous ~= nil and previous.loading and result.state == "busy"),
  }
  if M.config and M.config.progress then
    local text = "editseq: " .. tostring(result.state)
    if result.message and result.message ~= "" then
      text = text .. " (" .. result.message .. ")"
    end
    if result.state == "loading" then
      notify(text)
    elseif result.state == "ready" and previous and previous.loading then
      notify(text)
    elseif result.state == "error" then
      -- The server also says it with window/showMessage; keep the status line text only.
      vim.api.nvim_echo({ { text, "ErrorMsg" } }, false, {})
    end
  end
  pcall(vim.api.nvim_exec_autocmds, "User", {
    pattern = "EditseqStatus",
    modeline = false,
    data = { client_id = ctx.client_id, state = result.state, message = result.message },
  })
end

--- A short status for a statusline: "editseq: ready", "editseq: busy", or "" without a server.
function M.statusline(bufnr)
  local clients = get_clients({ bufnr = bufnr or 0, name = M.name })
  if #clients == 0 then
    return ""
  end
  local status = M.statuses[clients[1].id]
  local active = M.active[clients[1].id]
  if active then
    for _, title in pairs(active) do
      return "editseq: " .. title
    end
  end
  return "editseq: " .. (status and status.state or "starting")
end

local function on_progress(client_id, params)
  if not is_editseq(client_id) or type(params) ~= "table" or type(params.value) ~= "table" then
    return
  end
  local value, token = params.value, params.token
  M.active[client_id] = M.active[client_id] or {}
  if value.kind == "begin" then
    M.active[client_id][token] = value.title or "editseq"
    -- The server titles a run's progress "editseq <action> <function>": tie it to the command.
    for _, entry in pairs(M.pending[client_id] or {}) do
      if entry.token == nil and (value.title or ""):find("editseq " .. entry.action, 1, true) == 1 then
        entry.token = token
        break
      end
    end
  end
  local title = value.title or M.active[client_id][token] or "editseq"
  if value.kind == "end" then
    M.active[client_id][token] = nil
    for _, entry in pairs(M.pending[client_id] or {}) do
      if entry.token == token then
        vim.defer_fn(function()
          entry.settle({ code = -32800, message = "editseq: " .. (value.message or "cancelled") })
        end, M.reply_grace_ms)
      end
    end
  end
  if not (M.config and M.config.progress) then
    return
  end
  local text = title
  if value.message and value.message ~= "" then
    text = text .. ": " .. value.message
  end
  if value.kind == "begin" then
    notify(text .. " …")
  elseif value.kind == "end" then
    notify(text)
  else
    vim.api.nvim_echo({ { text } }, false, {})
  end
end

-- Finding the server and the function at the cursor --------------------------------------------

--- The editseq client attached to ``bufnr`` (or nil and a message).
function M.client(bufnr)
  local clients = get_clients({ bufnr = bufnr, name = M.name })
  if #clients == 0 then
    return nil, "editseq: no editseq server attached to this buffer (is it a Python file? see :checkhealth editseq)"
  end
  return clients[1]
end

local function position_params(client, bufnr)
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_buf(win) ~= bufnr then
    win = vim.fn.bufwinid(bufnr)
  end
  return vim.lsp.util.make_position_params(win, client.offset_encoding or "utf-16")
end

-- Applying code actions --------------------------------------------------------------------------

local function supports(client, method)
  if has_011 then
    return client:supports_method(method)
  end
  return client.supports_method(method)
end

--- Apply one code action of ``client`` (resolving it first if it has no edit), then call ``done(err)``.
function M.apply_action(client, bufnr, action, done)
  done = done or function() end
  local function run(resolved)
    if resolved.edit then
      vim.lsp.util.apply_workspace_edit(resolved.edit, client.offset_encoding or "utf-16")
    end
    if resolved.command then
      local command = type(resolved.command) == "table" and resolved.command or resolved
      M.execute(client, bufnr, command.command, command.arguments or {}, function(err, result)
        done(err, result)
      end)
      return
    end
    done(nil, resolved)
  end
  if not action.edit and not action.command and action.data ~= nil and supports(client, "codeAction/resolve") then
    call(client, "request", "codeAction/resolve", action, function(err, resolved)
      if err then
        done(err)
        return
      end
      run(resolved or action)
    end, bufnr)
  else
    run(action)
  end
end

--- The code actions the server offers at ``params`` (position params), as a list, to ``callback``.
local function code_actions(client, bufnr, params, callback)
  local pos = params.position
  local request = {
    textDocument = params.textDocument,
    range = { start = pos, ["end"] = pos },
    context = { diagnostics = {}, triggerKind = 1 },
  }
  call(client, "request", "textDocument/codeAction", request, function(err, result)
    callback(err, result or {})
  end, bufnr)
end
M.code_actions = code_actions

--- After a run: offer (or apply) the steps of run ``result.run``, as ``mode`` says.
local function offer_steps(client, bufnr, params, result, mode, done)
  code_actions(client, bufnr, params, function(err, actions)
    if err then
      notify("editseq: could not list the run's steps: " .. tostring(err.message or err), vim.log.levels.ERROR)
      done(err)
      return
    end
    local steps = {}
    for _, action in ipairs(actions) do
      if type(action.data) == "table" and action.data.run == result.run then
        table.insert(steps, action)
      end
    end
    table.sort(steps, function(a, b)
      return (a.data.k or 0) < (b.data.k or 0)
    end)
    if #steps == 0 then
      notify("editseq: the run's steps are gone (the buffer changed since it started); run it again",
        vim.log.levels.WARN)
      done({ message = "no steps" })
      return
    end
    if mode == "apply" then
      M.apply_action(client, bufnr, steps[#steps], done)
      return
    end
    vim.ui.select(steps, {
      prompt = "editseq: apply steps",
      kind = "codeaction",
      format_item = function(action)
        return action.title
      end,
    }, function(choice)
      if not choice then
        done(nil, nil)
        return
      end
      M.apply_action(client, bufnr, choice, done)
    end)
  end)
end

-- Commands ---------------------------------------------------------------------------------------

--- workspace/executeCommand ``name`` with ``arguments``; ``handler(err, result)`` is called exactly once,
--- also for a cancelled command (err.code -32800). Returns the request id.
function M.execute(client, bufnr, name, arguments, handler)
  local request_id
  local entry = { command = name, action = name:gsub("^editseq%.", "") }
  entry.settle = function(err, result)
    if entry.settled then
      return
    end
    entry.settled = true
    if M.pending[client.id] and request_id then
      M.pending[client.id][request_id] = nil
    end
    handler(err, result)
  end
  local params = { command = name, arguments = arguments }
  local ok
  ok, request_id = call(client, "request", "workspace/executeCommand", params, function(err, result)
    entry.settle(err, result)
  end, bufnr)
  if ok and request_id then
    M.pending[client.id] = M.pending[client.id] or {}
    M.pending[client.id][request_id] = entry
  elseif not ok then
    entry.settle({ message = "editseq: the server is not running" })
  end
  return request_id
end

--- Run ``editseq.write`` or ``editseq.refine`` for the function at the cursor.
--- opts: bufnr, mode ("select" | "apply" | "none"), tests (extra test ids for refine), on_done(err, result).
function M.run(action, opts)
  opts = opts or {}
  local bufnr = opts.bufnr or vim.api.nvim_get_current_buf()
  local function finish(err, result)
    if opts.on_done then
      opts.on_done(err, result)
    end
    pcall(vim.api.nvim_exec_autocmds, "User", {
      pattern = "EditseqRunDone",
      modeline = false,
      data = { action = action, bufnr = bufnr, error = err, result = result },
    })
  end
  local client, problem = M.client(bufnr)
  if not client then
    notify(problem, vim.log.levels.ERROR)
    finish({ message = problem })
    return
  end
  local mode = opts.mode or (M.config and M.config.on_result) or "select"
  local params = position_params(client, bufnr)
  local arguments = { params.textDocument.uri, params.position }
  for _, test in ipairs(opts.tests or {}) do
    table.insert(arguments, test)
  end
  local command = "editseq." .. action
  return M.execute(client, bufnr, command, arguments, function(err, result)
    if err then
      local message = err.message or tostring(err)
      if err.code == -32800 then
        notify("editseq: " .. action .. " cancelled", vim.log.levels.WARN)
      else
        notify(message, vim.log.levels.ERROR)
      end
      finish(err)
      return
    end
    if type(result) ~= "table" then
      finish(nil, result)
      return
    end
    if (result.steps or 0) == 0 then
      notify("editseq: " .. (result.summary or action) .. ": no edit to apply", vim.log.levels.WARN)
      finish(nil, result)
      return
    end
    if mode == "none" then
      -- The server has said so already (window/showMessage): the steps are in the code actions.
      finish(nil, result)
      return
    end
    offer_steps(client, bufnr, params, result, mode, function(apply_err)
      finish(apply_err, result)
    end)
  end)
end

--- Cancel what the editseq server is running: every active progress token of the server (it stops
--- the model and the tests) and, for commands without progress yet, the request ($/cancelRequest).
--- The commands' handlers are called at once with a cancellation. Returns how many were cancelled.
function M.cancel(bufnr)
  local count = 0
  local clients = get_clients({ bufnr = bufnr, name = M.name })
  if #clients == 0 then
    clients = get_clients({ name = M.name })
  end
  for _, client in ipairs(clients) do
    local cancelled = {}
    for token, _ in pairs(M.active[client.id] or {}) do
      call(client, "notify", "window/workDoneProgress/cancel", { token = token })
      cancelled[token] = true
      count = count + 1
    end
    for request_id, entry in pairs(vim.tbl_extend("force", {}, M.pending[client.id] or {})) do
      if not (entry.token and cancelled[entry.token]) then
        call(client, "cancel_request", request_id)
        count = count + 1
      end
      entry.settle({ code = -32800, message = "editseq: " .. entry.action .. " cancelled" })
    end
  end
  if count == 0 then
    notify("editseq: nothing to cancel")
  end
  return count
end

-- Setup ------------------------------------------------------------------------------------------

--- The LSP client configuration for ``opts`` (vim.lsp.config / vim.lsp.start format).
function M.lsp_config(opts)
  local settings = wire_settings(opts.settings)
  return {
    name = M.name,
    cmd = opts.cmd,
    filetypes = opts.filetypes,
    root_markers = opts.root_markers,
    root_dir = function(bufnr, on_dir)
      local root = buf_root(bufnr, opts.root_markers)
      if root then
        on_dir(root)
      end
    end,
    init_options = vim.tbl_extend("force", settings, { trustedWorkspace = opts.trust_workspace == true }),
    settings = { editseq = settings },
    handlers = { ["editseq/status"] = M.on_status },
  }
end

local function start_legacy(opts, bufnr)
  local config = M.lsp_config(opts)
  local root = buf_root(bufnr, opts.root_markers)
  if not root then
    return
  end
  config.root_dir = root
  config.root_markers = nil
  config.filetypes = nil
  vim.lsp.start(config, { bufnr = bufnr })
end

local function create_commands()
  local function command(name, fn, spec)
    pcall(vim.api.nvim_del_user_command, name)
    vim.api.nvim_create_user_command(name, fn, spec)
  end
  command("EditseqWrite", function(o)
    M.run("write", { mode = o.bang and "apply" or nil })
  end, { bang = true, desc = "editseq: write the function at the cursor edit by edit (! applies all steps)" })
  command("EditseqRefine", function(o)
    M.run("refine", { mode = o.bang and "apply" or nil, tests = o.fargs })
  end, {
    bang = true,
    nargs = "*",
    desc = "editseq: refine the function at the cursor until its tests pass (optional test ids; ! applies)",
  })
  command("EditseqCancel", function()
    M.cancel(vim.api.nvim_get_current_buf())
  end, { desc = "editseq: cancel the running write or refine" })
end

--- Register the editseq server for Python buffers and create the user commands.
function M.setup(opts)
  opts = vim.tbl_extend("force", vim.deepcopy(defaults), opts or {})
  if type(opts.cmd) == "string" then
    opts.cmd = { opts.cmd }
  end
  M.config = opts

  local group = vim.api.nvim_create_augroup("editseq", { clear = true })
  if vim.fn.exists("##LspProgress") == 1 then
    vim.api.nvim_create_autocmd("LspProgress", {
      group = group,
      callback = function(ev)
        on_progress(ev.data.client_id, ev.data.params)
      end,
    })
  else
    -- Before 0.10 there is no LspProgress event: wrap the $/progress handler instead.
    local default = vim.lsp.handlers["$/progress"]
    vim.lsp.handlers["$/progress"] = function(err, result, ctx, config)
      on_progress(ctx.client_id, result)
      if default then
        return default(err, result, ctx, config)
      end
    end
  end
  vim.api.nvim_create_autocmd("LspDetach", {
    group = group,
    callback = function(ev)
      local id = ev.data and ev.data.client_id
      if id and is_editseq(id) and #vim.lsp.get_buffers_by_client_id(id) <= 1 then
        M.active[id], M.pending[id] = nil, nil
      end
    end,
  })

  if has_011 and opts.lsp_config and vim.lsp.config and vim.lsp.enable then
    vim.lsp.config(M.name, M.lsp_config(opts))
    vim.lsp.enable(M.name)
  else
    vim.api.nvim_create_autocmd("FileType", {
      group = group,
      pattern = opts.filetypes,
      callback = function(ev)
        start_legacy(opts, ev.buf)
      end,
    })
    -- Buffers already open when setup() runs (lazy loading).
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(opts.filetypes, vim.bo[bufnr].filetype) then
        start_legacy(opts, bufnr)
      end
    end
  end
  create_commands()
  return M
end

return M
