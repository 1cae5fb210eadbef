--- red.compare — base vs edited answers over a list of prompts (the same loaded model; the
--- edits applied or not), printed side by side or as Markdown.
---
---   local compare = require("red.compare")
---   local rows = compare.prompts(model, edits, {"Define harbor.", "Define kite."},
---                                {max_tokens = 48, temperature = 0, template = "red"})
---   compare.print(rows)
local compare = {}

function compare.prompts(model, edits, prompts, opts)
  opts = opts or {}
  local rows = {}
  for _, prompt in ipairs(prompts) do
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.edits = nil
    local base = model:generate(prompt, o)
    o.edits = edits
    local edited = model:generate(prompt, o)
    rows[#rows + 1] = {prompt = prompt, base = base, edited = edited}
  end
  return rows
end

function compare.print(rows, out)
  out = out or io.stdout
  for _, r in ipairs(rows) do
    out:write("── prompt: ", r.prompt, "\n   base:   ", (r.base:gsub("\n", "\n           ")),
              "\n   edited: ", (r.edited:gsub("\n", "\n           ")), "\n")
  end
end

function compare.markdown(rows)
  local function cell(s) return (s:gsub("|", "\\|"):gsub("\n", " ")) end
  local out = {"| prompt | base | edited |", "| --- | --- | --- |"}
  for _, r in ipairs(rows) do
    out[#out + 1] = "| " .. cell(r.prompt) .. " | " .. cell(r.base) .. " | " .. cell(r.edited) .. " |"
  end
  return table.concat(out, "\n") .. "\n"
end

return compare
