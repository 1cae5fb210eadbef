--- red.task — what the example scripts share: their command-line arguments and the small
--- synthetic tasks they build (until redit ships its own data sets).
local task = {}

--- Parses an example's arguments: MODEL [--quick] [--out DIR] [--seeds N].
--- REDIT_QUICK=1 in the environment also selects the quick mode (a few steps per run).
function task.args(argv, usage)
  local a = {quick = os.getenv("REDIT_QUICK") == "1", out = ".", seeds = 3}
  local i = 1
  while argv[i] do
    local v = argv[i]
    if v == "--quick" then a.quick = true
    elseif v == "--out" then i = i + 1; a.out = argv[i]
    elseif v == "--seeds" then i = i + 1; a.seeds = tonumber(argv[i])
    elseif v:sub(1, 1) == "-" then error("unknown option " .. v .. "\n" .. usage, 0)
    else a.model = v end
    i = i + 1
  end
  if not a.model then error("no model given\n" .. usage, 0) end
  if a.quick then a.seeds = 1 end
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

--- Training options for the examples: the full setting, or a few steps in quick mode.
function task.train_opts(a, extra)
  local o = {lr = 2e-2, epochs = 3, batch = 8, micro_batch = 8, max_len = 96, warmup = 0.06,
             template = "plain"}
  if a.quick then o.max_steps = 3; o.epochs = 1 end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

return task
