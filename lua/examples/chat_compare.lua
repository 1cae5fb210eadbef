--- Trains RED edits on a small instruction task, then shows the base and the edited answers
--- to the same prompts side by side (one loaded model; the edits applied or not), and at
--- half strength.
---
---   build/redit run lua/examples/chat_compare.lua MODEL.gguf [--out DIR] [--quick]
---
--- Measured on the 2-core machine with a stories15M-shaped model: 3.3 s.
local compare = require("red.compare")
local grid = require("red.grid")
local task = require("red.task")
local a = task.args(arg, "usage: chat_compare.lua MODEL " .. task.OPTIONS)

local train_path, eval_path, cleanup = task.data(a)
local model = red.load(a.model)
local opts = task.train_opts(a)
local train = red.dataset(train_path, {model = model, template = opts.template, max_len = opts.max_len})
local e = model:edits{sites = "ffn", layers = "all"}
local o = {model = model, edits = e, data = train, seed = 1, on_step = task.progress("RED ffn")}
for k, x in pairs(opts) do if o[k] == nil and k ~= "template" then o[k] = x end end
red.train(o)

local prompts = task.prompts(a, 4)
io.stderr:write(string.format("answering %d prompts, base and edited  (%d s in all)\n", #prompts,
                              task.elapsed()))
local gen = {max_tokens = a.quick and 8 or 32, temperature = 0, template = opts.template}
local rows = compare.prompts(model, e, prompts, gen)
compare.print(rows)
gen.strength = 0.5
local half = compare.prompts(model, e, prompts, gen)
print("\nat strength 0.5:")
compare.print(half)
grid.write(a.out .. "/chat_compare.md", compare.markdown(rows))
cleanup()
