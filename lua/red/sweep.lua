--- red.sweep — a learning-rate sweep built on red.grid.
---
---   local sweep = require("red.sweep")
---   local results = sweep.lr{
---     lrs = {1e-3, 3e-3, 1e-2}, seeds = {1, 2},
---     run = function(lr, seed) ... return {eval_loss = ...} end,
---   }
---   print(sweep.best(results, "eval_loss"))   -- the lr with the lowest mean eval_loss
local grid = require("red.grid")
local sweep = {}

function sweep.lr(spec)
  assert(type(spec.lrs) == "table" and #spec.lrs > 0, "sweep.lr: lrs must be a non-empty list")
  local variants = {}
  for _, lr in ipairs(spec.lrs) do
    variants[#variants + 1] = {name = string.format("lr %g", lr), lr = lr}
  end
  return grid.run{variants = variants, seeds = spec.seeds, metrics = spec.metrics,
                  on_run = spec.on_run,
                  run = function(v, seed) return spec.run(v.lr, seed) end}
end

--- The variant with the lowest (or, with higher_is_better, highest) mean of metric.
function sweep.best(results, metric, higher_is_better)
  local best
  for _, row in ipairs(results.rows) do
    local m = row.mean[metric]
    if m == m and (not best or (higher_is_better and m > best.mean[metric])
                   or (not higher_is_better and m < best.mean[metric])) then
      best = row
    end
  end
  return best and best.variant.lr, best
end

return sweep
