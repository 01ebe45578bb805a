--- :checkhealth editseq — Neovim version, the server command, the settings.

local M = {}

local health = vim.health or require("health")
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local warn = health.warn or health.report_warn
local error = health.error or health.report_error
local info = health.info or health.report_info

local function check_version()
  start("Neovim")
  local v = vim.version()
  local text = string.format("Neovim %d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.11") == 1 then
    ok(text .. " (vim.lsp.config / vim.lsp.enable)")
  elseif vim.fn.has("nvim-0.8") == 1 then
    warn(text .. ": older than 0.11, the server is started with vim.lsp.start from a FileType autocmd",
      { "Upgrade to Neovim 0.11 or later for vim.lsp.config/vim.lsp.enable" })
  else
    error(text .. ": editseq needs Neovim 0.8 or later (vim.lsp.start)")
  end
end

--- The command that prints the server's version: ``cmd`` up to ``serve``, plus ``--version``.
function M.version_cmd(cmd)
  local out = {}
  for _, word in ipairs(cmd) do
    if word == "serve" then
      break
    end
    table.insert(out, word)
  end
  table.insert(out, "--version")
  return out
end

local function run(argv)
  if vim.system then
    local done = vim.system(argv, { text = true }):wait(20000)
    return done.code, (done.stdout or "") .. (done.stderr or "")
  end
  local output = vim.fn.system(argv)
  return vim.v.shell_error, output
end

local function check_server(config)
  start("Server command")
  local cmd = config.cmd
  if type(cmd) ~= "table" or #cmd == 0 then
    error("`cmd` must be a list of strings, got " .. vim.inspect(cmd))
    return
  end
  info("cmd = " .. table.concat(cmd, " "))
  if vim.fn.executable(cmd[1]) ~= 1 then
    error("`" .. cmd[1] .. "` is not executable or not on PATH", {
      "Install editseq in the environment Neovim sees (`pip install editseq`)",
      "or set `cmd` to the full path, e.g. { \"/path/to/venv/bin/editseq\", \"serve\" }",
    })
    return
  end
  ok("`" .. cmd[1] .. "` found: " .. vim.fn.exepath(cmd[1]))
  local argv = M.version_cmd(cmd)
  local code, output = run(argv)
  output = vim.trim(output or "")
  if code == 0 and output:match("editseq") then
    ok("`" .. table.concat(argv, " ") .. "` runs: " .. output)
  else
    error("`" .. table.concat(argv, " ") .. "` failed (exit " .. tostring(code) .. "): " .. output)
  end
end

local choices = {
  backend = { "transformers", "openai" },
  format = { "auto", "lintseq", "chat" },
  strategy = { "auto", "generate", "rank", "rewrite" },
}

local function check_settings(config)
  start("Settings")
  local editseq = require("editseq")
  local settings = config.settings or {}
  if type(settings) ~= "table" then
    error("`settings` must be a table, got " .. type(settings))
    return
  end
  local problems = 0
  local known = vim.tbl_keys(editseq.known_settings)
  table.sort(known)
  for key, value in pairs(settings) do
    local expected = editseq.known_settings[key]
    if not expected then
      warn("unknown setting `" .. tostring(key) .. "` (the server ignores it)",
        { "Settings are flat camelCase: " .. table.concat(known, ", ") })
      problems = problems + 1
    elseif type(value) ~= expected then
      error("`" .. key .. "` must be a " .. expected .. ", got " .. type(value) .. " " .. vim.inspect(value))
      problems = problems + 1
    elseif choices[key] and not vim.tbl_contains(choices[key], value) then
      error("`" .. key .. "` must be one of " .. table.concat(choices[key], ", ") .. ", got " .. vim.inspect(value))
      problems = problems + 1
    elseif expected == "number" and value < 0 then
      error("`" .. key .. "` must not be negative, got " .. tostring(value))
      problems = problems + 1
    end
  end
  local model = settings.model
  if model == nil then
    info("`model` not set: the server uses the model shipped inside editseq (\"embedded\"), on this machine")
  elseif type(model) == "string" and (model:sub(1, 1) == "/" or model:sub(1, 1) == "." or model:sub(1, 1) == "~") then
    local path = vim.fn.expand(model)
    if vim.fn.isdirectory(path) == 1 then
      ok("model folder exists: " .. path)
    else
      error("model folder not found: " .. path, { "Set `settings.model` to a local model folder or a hub id" })
      problems = problems + 1
    end
  elseif type(model) == "string" then
    info("model: " .. model)
  end
  if problems == 0 then
    ok("settings look valid")
  end
  local mode = config.on_result
  if not vim.tbl_contains({ "select", "apply", "none" }, mode) then
    error("`on_result` must be \"select\", \"apply\" or \"none\", got " .. vim.inspect(mode))
  end
end

local function check_clients()
  start("Running servers")
  local editseq = require("editseq")
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  local clients = get({ name = editseq.name })
  if #clients == 0 then
    info("no editseq server running (it starts when a Python file is opened)")
    return
  end
  for _, client in ipairs(clients) do
    local status = editseq.statuses[client.id]
    local root = client.config.root_dir or (client.workspace_folders and client.workspace_folders[1].name) or "?"
    ok(string.format("client %d: root %s, encoding %s, status %s", client.id, root,
      tostring(client.offset_encoding), status and (status.state .. (status.message ~= "" and (" (" .. status.message .. ")") or ""))
        or "unknown"))
  end
end

function M.check()
  check_version()
  local editseq = require("editseq")
  local config = editseq.config
  if not config then
    start("Setup")
    warn("require(\"editseq\").setup() has not been called; checking the defaults")
    config = { cmd = { "editseq", "serve" }, settings = {}, on_result = "select" }
  end
  check_server(config)
  check_settings(config)
  check_clients()
end

return M
