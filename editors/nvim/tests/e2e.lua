-- End-to-end driver for tests/editors/test_nvim_plugin.py (Neovim >= 0.11, run with `nvim --headless -u NONE -i NONE -l`).
--
-- nvim -l e2e.lua FILE OUT_JSON
-- Environment: EDITSEQ_NVIM_PLUGIN (this plugin's folder), EDITSEQ_CMD and EDITSEQ_SETTINGS (JSON),
-- EDITSEQ_LINE (1-based cursor line inside the function), EDITSEQ_MODE ("config" or "legacy"),
-- EDITSEQ_TRUST ("1": setup's trust_workspace),
-- EDITSEQ_RUN ("write" to run :EditseqWrite, empty to only list code actions).
-- Writes what happened as JSON to OUT_JSON; any Lua error exits non-zero.

local file, out_path = arg[1], arg[2]
local env = vim.env
local report = {
  titles = {},
  kinds = {},
  progress = {},
  notifications = {},
  statuses = {},
  applied_edits = {},
  select_items = {},
  messages = {},
}

local function save()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(report))
  f:close()
end

local function wait(ms, what, predicate)
  if not vim.wait(ms, predicate, 20) then
    report.timeout = what
    save()
    error("timed out waiting for " .. what)
  end
end

vim.opt.runtimepath:prepend(env.EDITSEQ_NVIM_PLUGIN)
vim.cmd("filetype on")

-- What the user would see.
vim.notify = function(msg, level)
  table.insert(report.notifications, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end
-- The user picks the last step offered (all steps).
vim.ui.select = function(items, opts, on_choice)
  for _, item in ipairs(items) do
    table.insert(report.select_items, opts.format_item and opts.format_item(item) or tostring(item))
  end
  vim.schedule(function()
    on_choice(items[#items], #items)
  end)
end
-- Record every workspace edit Neovim applies.
local apply = vim.lsp.util.apply_workspace_edit
vim.lsp.util.apply_workspace_edit = function(edit, encoding)
  table.insert(report.applied_edits, { edit = edit, encoding = encoding })
  return apply(edit, encoding)
end

-- Record the server's window/showMessage (bad settings are reported that way).
local show_message = vim.lsp.handlers["window/showMessage"]
vim.lsp.handlers["window/showMessage"] = function(err, params, ctx, config)
  table.insert(report.messages, { type = params.type, message = params.message })
  return show_message(err, params, ctx, config)
end

vim.api.nvim_create_autocmd("LspProgress", {
  callback = function(ev)
    local value = ev.data.params.value
    table.insert(report.progress, { kind = value.kind, title = value.title, message = value.message })
  end,
})
vim.api.nvim_create_autocmd("User", {
  pattern = "EditseqStatus",
  callback = function(ev)
    table.insert(report.statuses, ev.data.state)
  end,
})

local editseq = require("editseq")
editseq.setup({
  cmd = vim.json.decode(env.EDITSEQ_CMD),
  settings = vim.json.decode(env.EDITSEQ_SETTINGS),
  lsp_config = env.EDITSEQ_MODE ~= "legacy",
  trust_workspace = env.EDITSEQ_TRUST == "1",
})
report.commands = {}
for _, name in ipairs({ "EditseqWrite", "EditseqRefine", "EditseqCancel" }) do
  report.commands[name] = vim.fn.exists(":" .. name) == 2
end

vim.cmd.edit(vim.fn.fnameescape(file))
local bufnr = vim.api.nvim_get_current_buf()
report.filetype = vim.bo[bufnr].filetype
local client
wait(20000, "the editseq server to attach and initialize", function()
  client = vim.lsp.get_clients({ bufnr = bufnr, name = "editseq" })[1]
  return client ~= nil and client.initialized
end)
report.server = client.server_info
report.encoding = client.offset_encoding
report.root_dir = client.config.root_dir
report.init_options = client.config.init_options
report.client_settings = client.settings

vim.api.nvim_win_set_cursor(0, { tonumber(env.EDITSEQ_LINE), 4 })

local listed = nil
editseq.code_actions(client, bufnr, vim.lsp.util.make_position_params(0, client.offset_encoding), function(err, actions)
  listed = { err = err, actions = actions }
end)
wait(10000, "textDocument/codeAction", function()
  return listed ~= nil
end)
assert(listed.err == nil, "codeAction failed: " .. vim.inspect(listed.err))
for _, action in ipairs(listed.actions) do
  table.insert(report.titles, action.title)
  table.insert(report.kinds, action.kind)
end

--- :EditseqWrite, waited for until the plugin's User EditseqRunDone; ``on_begin`` runs at progress begin.
local function editseq_write(on_begin)
  local done = nil
  vim.api.nvim_create_autocmd("User", {
    pattern = "EditseqRunDone",
    once = true,
    callback = function(ev)
      done = ev.data
    end,
  })
  local begin = on_begin and vim.api.nvim_create_autocmd("LspProgress", {
    pattern = "begin",
    once = true,
    callback = function()
      vim.schedule(on_begin)
    end,
  })
  local started = vim.uv.hrtime()
  vim.cmd("EditseqWrite")
  wait(tonumber(env.EDITSEQ_WAIT_MS or "45000"), ":EditseqWrite to finish", function()
    return done ~= nil
  end)
  if begin then
    pcall(vim.api.nvim_del_autocmd, begin)
  end
  done.seconds = (vim.uv.hrtime() - started) / 1e9
  return done
end

local function buffer_text()
  return table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n") .. "\n"
end

if env.EDITSEQ_RUN == "write" then
  report.before = buffer_text()
  -- 1. Cancelled as soon as it begins (the server is still loading the model): nothing changes.
  local cancelled = editseq_write(function()
    report.cancel_count = editseq.cancel(bufnr)
  end)
  -- The handler is settled at once; the server's progress ends when the run has stopped. (Starting the
  -- next run before that would attach it to the cancelled one: the server shares a run per request.)
  wait(30000, "the cancelled run's progress to end", function()
    return vim.tbl_count(editseq.active[client.id] or {}) == 0
  end)
  report.cancelled = { error = cancelled.error, result = cancelled.result, seconds = cancelled.seconds,
    buffer_unchanged = buffer_text() == report.before, pending_after = vim.tbl_count(editseq.pending[client.id] or {}) }
  report.progress_cancelled, report.progress = report.progress, {}
  report.notifications_cancelled, report.notifications = report.notifications, {}
  -- 2. Run to the end: the user picks the last step in vim.ui.select; the edit is applied.
  local done = editseq_write()
  report.run_seconds = done.seconds
  report.run_error = done.error
  report.run_result = done.result
  report.buffer = buffer_text()
  report.modified = vim.bo[bufnr].modified
  vim.cmd.write()
  report.statusline = editseq.statusline(bufnr)
  report.active_after = vim.tbl_count(editseq.active[client.id] or {})
end

-- :checkhealth editseq, in this session (the plugin is set up and the server is running).
vim.cmd("checkhealth editseq")
report.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)

save()
vim.lsp.stop_client(client.id)
vim.wait(3000, function()
  return vim.lsp.get_client_by_id(client.id) == nil
end)
