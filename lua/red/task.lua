--- red.task — what the example scripts share: their command-line arguments, the data they
--- train on (the bundled data sets given with --train/--eval, or a small synthetic task).
local task = {}

--- Parses an example's arguments: MODEL [--quick] [--out DIR] [--seeds N]
--- [--train FILE --eval FILE] [--template T] [--lr X] [--epochs N] [--batch N] [--max-len N]
--- [--compute f32|bf16|auto] [--group-by-length]; for methods.lua also [--data DIR] [--n-train N]
--- [--n-eval N] [--lora-lr X] [--ia3-lr X] [--ft-lr X] [--only NAME].
--- REDIT_QUICK=1 in the environment also selects the quick mode (a few steps per run).
--- The options every example takes, for its usage line.
task.OPTIONS = "[--out DIR] [--quick] [--train F --eval F] [--template T] [--lr X] [--epochs N] " ..
               "[--batch N] [--max-len N] [--compute f32|bf16|auto] [--group-by-length]"

local NUMBERS = {["--seeds"] = "seeds", ["--lr"] = "lr", ["--epochs"] = "epochs",
                 ["--batch"] = "batch", ["--max-len"] = "max_len", ["--ft-lr"] = "ft_lr",
                 ["--lora-lr"] = "lora_lr", ["--ia3-lr"] = "ia3_lr", ["--n-train"] = "n_train",
                 ["--n-eval"] = "n_eval"}
local STRINGS = {["--out"] = "out", ["--train"] = "train", ["--eval"] = "eval",
                 ["--template"] = "template", ["--compute"] = "compute", ["--data"] = "data",
                 ["--only"] = "only"}
function task.args(argv, usage)
  local a = {quick = os.getenv("REDIT_QUICK") == "1", out = ".", seeds = 3}
  local i = 1
  while argv[i] do
    local v = argv[i]
    if v == "--quick" then a.quick = true
    elseif v == "--group-by-length" then a.group_by_length = true
    elseif NUMBERS[v] then
      i = i + 1
      a[NUMBERS[v]] = tonumber(argv[i]) or error(v .. " needs a number\n" .. usage, 0)
      if v == "--seeds" then a.seeds_given = true end
    elseif STRINGS[v] then
      i = i + 1
      a[STRINGS[v]] = argv[i] or error(v .. " needs a value\n" .. usage, 0)
    elseif v:sub(1, 1) == "-" then error("unknown option " .. v .. "\n" .. usage, 0)
    else a.model = v end
    i = i + 1
  end
  if not a.model then error("no model given\n" .. usage, 0) end
  if (a.train == nil) ~= (a.eval == nil) then error("--train and --eval go together\n" .. usage, 0) end
  if a.quick then a.seeds = 1 end
  -- the tables are written after every run has finished: a folder that cannot take them
  -- has to fail now, not after the runs
  local probe = a.out .. "/.red-task-probe"
  local f, why = io.open(probe, "w")
  if not f then error("--out " .. a.out .. ": cannot write there (" .. why .. ")\n" .. usage, 0) end
  f:close()
  os.remove(probe)
  return a
end

local THINGS = {"apple", "sky", "grass", "sun", "plum", "carrot", "rose", "sea", "leaf",
                "lemon", "grape", "pumpkin"}
local COLOURS = {"red", "blue", "green", "yellow", "purple", "orange"}

local function write_lines(path, lines)
  local f = assert(io.open(path, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  assert(f:close())
  return path
end

--- An instruction task (Alpaca JSONL): "What colour is the X?" → "The X is C." with a fixed
--- colour per thing. Returns the training and held-out file paths (temporary files).
function task.colours(n_train, n_eval)
  local function lines(first, n)
    local out = {}
    for i = first, first + n - 1 do
      local thing = THINGS[i % #THINGS + 1]
      out[#out + 1] = string.format('{"instruction": "What colour is the %s?", "output": "The %s is %s."}',
                                    thing, thing, COLOURS[(i % #THINGS) % #COLOURS + 1])
    end
    return out
  end
  return write_lines(os.tmpname(), lines(0, n_train)), write_lines(os.tmpname(), lines(1000, n_eval))
end

--- A classification task (text + label JSONL): spam when the text mentions prizes.
function task.keywords(n_train, n_eval)
  local function lines(first, n)
    local out = {}
    for i = first, first + n - 1 do
      out[#out + 1] = string.format('{"text": "message %d about %s", "label": "%s"}', i,
                                    i % 2 == 1 and "money and prizes" or "the weekly meeting",
                                    i % 2 == 1 and "spam" or "ham")
    end
    return out
  end
  return write_lines(os.tmpname(), lines(0, n_train)), write_lines(os.tmpname(), lines(1000, n_eval))
end

--- The data an example trains on: the files given with --train/--eval (e.g. the bundled
--- datasets/define-words), else the synthetic colour task in temporary files. Returns the
--- training path, the held-out path and a function that removes what was made here.
function task.data(a)
  if a.train then return a.train, a.eval, function() end end
  local train_path, eval_path = task.colours(96, 24)
  return train_path, eval_path, function() os.remove(train_path); os.remove(eval_path) end
end

--- Prompts for chat comparisons: the instructions of the first n held-out examples given with
--- --eval (Alpaca JSONL), else questions of the colour task.
function task.prompts(a, n)
  if not a.eval then return {"What colour is the sky?", "What colour is the lemon?", "What colour is the rose?"} end
  local out = {}
  for line in io.lines(a.eval) do
    local p = line:match('"instruction"%s*:%s*"(.-)"')
    if p then out[#out + 1] = p end
    if #out == n then break end
  end
  return out
end

--- Training options for the examples: the full setting (overridden by --lr, --epochs,
--- --batch, --max-len, --template, --compute, --group-by-length), or a few steps in quick
--- mode.
function task.train_opts(a, extra)
  local o = {lr = 2e-2, epochs = 3, batch = 8, micro_batch = 8, max_len = 96, warmup = 0.06,
             template = "plain"}
  for _, k in ipairs({"lr", "epochs", "batch", "max_len", "template", "compute", "group_by_length"}) do
    if a[k] then o[k] = a[k] end
  end
  o.micro_batch = o.batch
  if a.quick then o.max_steps = 3; o.epochs = 1 end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- A red.train on_step callback writing progress lines to stderr, so a long run is not
--- silent: the first step, then every tenth of the run or 15 s, and the last step, e.g.
--- "  ffn seed 1: step 12/120  loss 2.3456  4.1 s".
function task.progress(label)
  local next_step, last_time = 1, -math.huge
  return function(p)
    if p.step >= next_step or p.step == p.total_steps or p.elapsed - last_time >= 15 then
      io.stderr:write(string.format("  %s: step %d/%d  loss %.4f  %.1f s\n", label, p.step,
                                    p.total_steps, p.loss, p.elapsed))
      next_step = p.step + math.max(1, p.total_steps // 10)
      last_time = p.elapsed
    end
  end
end

--- Whole seconds since red.task was loaded (the script's start), for the line ending a run.
local start = os.time()
function task.elapsed() return os.time() - start end

return task
