--- RED vs full fine-tuning: trainable parameters, their ratio to the model's, held-out loss
--- and time — the paper's headline comparison on a small scale.
---
---   build/redit run lua/examples/red_vs_ft.lua MODEL.gguf [--out DIR] [--quick]
---
--- Full fine-tuning changes the weights, so it runs on a second copy of the model. Measured on
--- the 2-core machine with a stories15M-shaped model: 12 s in all (RED 3.4 s, full 8.3 s).
local grid = require("red.grid")
local task = require("red.task")
local a = task.args(arg, "usage: red_vs_ft.lua MODEL [--ft-lr X] " .. task.OPTIONS)

local train_path, eval_path, cleanup = task.data(a)
local opts = task.train_opts(a)
local function data(model)
  return red.dataset(train_path, {model = model, template = opts.template, max_len = opts.max_len}),
         red.dataset(eval_path, {model = model, template = opts.template, max_len = opts.max_len})
end

local results = grid.run{
  variants = {{name = "RED (ffn, all layers)", full = false},
              {name = "full fine-tuning", full = true}},
  metrics = {"params", "ratio", "eval_loss", "seconds"},
  formats = {ratio = "%.0f", seconds = "%.1f"},
  run = function(v)
    local model = red.load(a.model)
    local train, eval = data(model)
    local info = model:info()
    local o = {model = model, data = train, eval = eval, seed = 1, on_step = task.progress(v.name)}
    for k, x in pairs(opts) do if o[k] == nil and k ~= "template" then o[k] = x end end
    if v.full then
      o.full = true
      o.lr = a.ft_lr or opts.lr / 10 -- full fine-tuning needs a smaller step
      local r = red.train(o)
      return {params = info.params, ratio = 1, eval_loss = red.eval(model, nil, eval).loss,
              seconds = r.seconds}
    end
    local e = model:edits{sites = "ffn", layers = "all"}
    o.edits = e
    local r = red.train(o)
    return {params = e:params(), ratio = e:ratio(), eval_loss = red.eval(model, e, eval).loss,
            seconds = r.seconds}
  end,
  on_run = function(v, _, m)
    io.stderr:write(string.format("%s: held-out loss %.4f  (%d s in all)\n", v.name, m.eval_loss,
                                  task.elapsed()))
  end,
}
local md = grid.markdown(results)
print(md)
grid.write(a.out .. "/red_vs_ft.md", md)
grid.write(a.out .. "/red_vs_ft.csv", grid.csv(results))
cleanup()
