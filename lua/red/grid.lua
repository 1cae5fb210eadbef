--- red.grid — ablation grids: option variants × seeds → runs → a results table with
--- mean ± standard deviation per metric, written as Markdown and CSV.
---
---   local grid = require("red.grid")
---   local results = grid.run{
---     variants = { {name = "ffn", sites = "ffn"}, {name = "attn", sites = "attn"} },
---     seeds = {1, 2, 3},
---     metrics = {"eval_loss", "accuracy"},        -- the columns, in order
---     run = function(variant, seed) ... return {eval_loss = 1.23, accuracy = 0.8} end,
---     on_run = function(variant, seed, metrics) end, -- optional progress hook
---     formats = {seconds = "%.1f"},               -- optional, per metric (see below)
---     fixed = {params = true},                    -- optional: the same in every run of a
---   }                                             -- variant, shown once (no "± 0")
---   print(grid.markdown(results)); grid.write("results.csv", grid.csv(results))
---
--- One number format a column in the Markdown table: the metric's entry in `formats` when
--- given, else "%d" when every value of the column is a whole number, else "%.4f" (losses
--- and accuracies alike). The CSV keeps 6 significant digits.
local grid = {}

--- Mean and (sample) standard deviation of a list of numbers; std is 0 for one value.
function grid.mean_std(values)
  local n, sum = #values, 0
  if n == 0 then return 0 / 0, 0 / 0 end
  for _, v in ipairs(values) do sum = sum + v end
  local mean = sum / n
  if n == 1 then return mean, 0 end
  local sq = 0
  for _, v in ipairs(values) do sq = sq + (v - mean) ^ 2 end
  return mean, math.sqrt(sq / (n - 1))
end

--- Runs spec.run(variant, seed) for every variant and seed; returns
--- {metrics = {...}, rows = {{name, runs = {{seed, metrics}}, mean = {}, std = {}}}}.
function grid.run(spec)
  assert(type(spec) == "table", "grid.run expects a table")
  assert(type(spec.variants) == "table" and #spec.variants > 0, "grid.run: variants must be a non-empty list")
  assert(type(spec.run) == "function", "grid.run: run must be a function(variant, seed)")
  local seeds = spec.seeds or {1}
  local metrics = spec.metrics
  local rows = {}
  for i, variant in ipairs(spec.variants) do
    local row = {name = variant.name or ("variant " .. i), variant = variant, runs = {},
                 mean = {}, std = {}}
    for _, seed in ipairs(seeds) do
      local m = spec.run(variant, seed)
      assert(type(m) == "table", "grid.run: run() must return a table of metrics")
      if not metrics then -- the first result decides the columns (sorted names)
        metrics = {}
        for k, v in pairs(m) do if type(v) == "number" then metrics[#metrics + 1] = k end end
        table.sort(metrics)
      end
      row.runs[#row.runs + 1] = {seed = seed, metrics = m}
      if spec.on_run then spec.on_run(variant, seed, m) end
    end
    for _, k in ipairs(metrics) do
      local values = {}
      for _, r in ipairs(row.runs) do
        if type(r.metrics[k]) == "number" then values[#values + 1] = r.metrics[k] end
      end
      row.mean[k], row.std[k] = grid.mean_std(values)
    end
    rows[#rows + 1] = row
  end
  return {metrics = metrics, rows = rows, seeds = seeds, formats = spec.formats or {},
          fixed = spec.fixed or {}}
end

local function whole(x) return x == math.floor(x) and math.abs(x) < 1e15 end

--- The format of metric k's column (see the top).
local function column_format(results, k)
  if results.formats and results.formats[k] then return results.formats[k] end
  for _, row in ipairs(results.rows) do
    for _, r in ipairs(row.runs) do
      local v = r.metrics[k]
      if type(v) == "number" and v == v and not whole(v) then return "%.4f" end
    end
  end
  return "%d"
end

local function fmt(x, f)
  if x ~= x then return "n/a" end
  if f == "%d" and not whole(x) then f = "%.4f" end -- (a mean of whole numbers)
  return string.format(f, x)
end

--- The results as a Markdown table: one row per variant, "mean ± std (n runs)".
function grid.markdown(results)
  local out = {"| variant | " .. table.concat(results.metrics, " | ") .. " |",
               "| --- |" .. string.rep(" --- |", #results.metrics)}
  local formats = {}
  for _, k in ipairs(results.metrics) do formats[k] = column_format(results, k) end
  for _, row in ipairs(results.rows) do
    local cells = {}
    for _, k in ipairs(results.metrics) do
      local f = formats[k]
      local fixed = results.fixed and results.fixed[k] and row.std[k] == 0
      cells[#cells + 1] = #row.runs > 1 and not fixed
                          and (fmt(row.mean[k], f) .. " ± " .. fmt(row.std[k], f))
                          or fmt(row.mean[k], f)
    end
    out[#out + 1] = "| " .. row.name .. " | " .. table.concat(cells, " | ") .. " |"
  end
  return table.concat(out, "\n") .. "\n"
end

local function csv_field(s)
  s = tostring(s)
  if s:find('[,"\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

--- Every run as CSV: variant, seed, then each metric.
function grid.csv(results)
  local out = {"variant,seed," .. table.concat(results.metrics, ",")}
  for _, row in ipairs(results.rows) do
    for _, r in ipairs(row.runs) do
      local cells = {csv_field(row.name), tostring(r.seed)}
      for _, k in ipairs(results.metrics) do
        local v = r.metrics[k]
        cells[#cells + 1] = type(v) == "number" and string.format("%.6g", v) or ""
      end
      out[#out + 1] = table.concat(cells, ",")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- Writes text to path atomically (a temporary file beside it, then a rename).
function grid.write(path, text)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  assert(f:close())
  assert(os.rename(tmp, path))
end

return grid
