/* The `red` Lua module end to end: Lua snippets (run with rd_lua_run_string, which goes
 * through the traceback handler) against tiny models the suite writes — a dim-64 2-layer
 * GGUF with the Llama-2 tokenizer, and a dim-32 one without a tokenizer for mismatches.
 * Every red function is called, with its error paths: wrong argument types, unknown options,
 * missing files (the message names the file), edits for another width, closed objects,
 * training stopped from on_step, errors raised in on_step/on_eval/on_token coming out of
 * red.train/generate (ASan: without leaks), arithmetic checked number by number, edit files
 * round-tripped, stop requests interrupting an endless loop and training (from another
 * thread too), scripts run as files with arguments, and the template prompt renderer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redit/dataset.h"
#include "redit/lua_red.h"
#include "redit/model.h"
#include "redit/model_file.h"
#include "tiny_model.h"

typedef struct fixture {
    char dir[512];
    lua_State *L;
} fixture;

static char g_dir[512]; /* the suite's temporary folder (group setup) */
static unsigned long long g_params;

static const char *const COLORS[] = {"red", "blue", "green", "yellow", "purple", "orange"};
static const char *const THINGS[] = {"apple", "sky", "grass", "sun", "plum", "carrot"};

static void write_file(const char *name, const char *text) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void write_task(const char *name, int first, int count) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = first; i < first + count; i++)
        fprintf(f, "{\"instruction\": \"What colour is the %s number %d?\", \"output\": \"The %s "
                   "is %s.\"}\n", THINGS[i % 6], i, THINGS[i % 6], COLORS[i % 6]);
    fclose(f);
}

static void write_model(const char *name, int dim, int with_tokenizer) {
    rd_error err = {0};
    rd_config cfg = {.dim = dim, .hidden_dim = 172, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .vocab_size = 32000, .seq_len = 128, .norm_eps = 1e-5f,
                     .rope_theta = 10000.0f, .rope_layout = RD_ROPE_ADJACENT};
    rd_model_file mf;
    assert_int_equal(rd_model_file_random(&mf, &cfg, 1, 7, RD_DTYPE_F32, &err), 0);
    if (with_tokenizer) {
        const char *tok = shared_fixture("llama2-tokenizer/tokenizer.bin");
        if (!tok) fail_msg("../shared/fixtures/llama2-tokenizer is missing");
        assert_int_equal(rd_vocab_load_llama2c(tok, 32000, &mf.vocab, &err), 0);
        g_params = (unsigned long long)rd_config_param_count(&cfg, 1);
    }
    snprintf(mf.name, sizeof mf.name, "tiny%d", dim);
    char path[700];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    if (rd_gguf_write(path, &mf, RD_DTYPE_F32, &err)) fail_msg("%s", err.msg);
    rd_model_file_release(&mf);
}

static int group_setup(void **state) {
    (void)state;
    if (tiny_tempdir(g_dir, sizeof g_dir)) return -1;
    write_model("tiny.gguf", 64, 1);
    write_model("narrow.gguf", 32, 0);
    write_task("train.jsonl", 0, 48);
    write_task("eval.jsonl", 100, 16);
    write_file("cls.jsonl", "{\"text\": \"I loved it\", \"label\": \"good\"}\n"
                            "{\"text\": \"I hated it\", \"label\": \"bad\"}\n"
                            "{\"text\": \"What a joy\", \"label\": \"good\"}\n"
                            "{\"text\": \"Awful film\", \"label\": \"bad\"}\n");
    write_file("bad.jsonl", "{\"instruction\": \"x\", \"output\": 3}\n"
                            "{\"instruction\": \"x\", \"output\": \"y\"}\n");
    write_file("mc.jsonl", "{\"context\": \"The sky is\", \"choices\": [\" blue\", \" a "
                           "plum\", \" green\"], \"gold\": 0}\n"
                           "{\"context\": \"Grass is\", \"choices\": [\" red\", \" green\"], "
                           "\"gold\": 1}\n");
    write_file("garbage.gguf", "this is not a model file at all, just some text\n");
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    tiny_rmdir(g_dir);
    return 0;
}

/* Globals and helpers every snippet can use. */
static const char PRELUDE[] =
    "MODEL = DIR .. '/tiny.gguf'; NARROW = DIR .. '/narrow.gguf'\n"
    "TRAIN = DIR .. '/train.jsonl'; EVAL = DIR .. '/eval.jsonl'\n"
    "function check_error(f, pattern)\n"
    "  local ok, e = pcall(f)\n"
    "  assert(not ok, 'expected an error containing: ' .. pattern)\n"
    "  e = tostring(e)\n"
    "  assert(e:find(pattern, 1, true), 'error \"' .. e .. '\" lacks \"' .. pattern .. '\"')\n"
    "  return e\n"
    "end\n"
    "function near(a, b, tol)\n"
    "  return math.abs(a - b) <= (tol or 1e-5) * math.max(1, math.abs(a), math.abs(b))\n"
    "end\n"
    "function same_array(a, b)\n"
    "  if #a ~= #b then return false end\n"
    "  for i = 1, #a do if a[i] ~= b[i] then return false end end\n"
    "  return true\n"
    "end\n"
    "function data(path, extra)\n"
    "  local o = {model = M, template = 'plain', max_len = 64}\n"
    "  for k, v in pairs(extra or {}) do o[k] = v end\n"
    "  return red.dataset(path, o)\n"
    "end\n"
    "M = red.load(MODEL)\n";

static void run_ok(lua_State *L, const char *code) {
    rd_error err = {0};
    if (rd_lua_run_string(L, code, "=test", &err)) fail_msg("Lua: %s", rd_lua_last_error(L));
}

/* The chunk must fail with a message containing `want`. */
static void run_fails(lua_State *L, const char *code, const char *want) {
    rd_error err = {0};
    assert_int_equal(rd_lua_run_string(L, code, "=test", &err), -1);
    if (!strstr(err.msg, want)) fail_msg("error \"%s\" lacks \"%s\"", err.msg, want);
    assert_string_equal(rd_lua_last_error(L), err.msg); /* short messages: the same text */
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    rd_error err = {0};
    if (!f || !(f->L = rd_lua_new(&err))) return -1;
    char code[1200];
    snprintf(code, sizeof code, "DIR = '%s'\n", g_dir);
    run_ok(f->L, code);
    run_ok(f->L, PRELUDE);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    rd_lua_close(f->L);
    free(f);
    return 0;
}

/* ---- module, model ---------------------------------------------------------------- */

static void test_module(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L, "assert(red.version:match('^%d+%.%d+%.%d+$'), red.version)\n"
              "assert(package.loaded.red == red and require('red') == red)\n"
              "local prev = red.threads(1)\n"
              "assert(math.type(prev) == 'integer' and prev >= 1)\n"
              "assert(red.threads(2) == 1 and red.threads() == 2)\n"
              "red.threads(prev)\n"
              "check_error(function() red.threads('x') end, \"bad argument #1 to 'threads'\")\n");
}

static void test_load_info(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    char code[200];
    snprintf(code, sizeof code, "PARAMS = %llu", g_params);
    run_ok(L, code);
    run_ok(L, "local i = M:info()\n"
              "assert(i.format == 'GGUF' and i.name == 'tiny64' and i.type == 'F32')\n"
              "assert(i.types.F32 == 1 + 2 * 7 and i.path == MODEL)\n"
              "assert(i.dim == 64 and i.hidden_dim == 172 and i.layers == 2 and i.heads == 4)\n"
              "assert(i.kv_heads == 2 and i.head_dim == 16 and i.vocab == 32000)\n"
              "assert(i.context == 128 and i.norm_eps == 1e-5 and i.rope_theta == 10000)\n"
              "assert(i.tied and i.tokenizer and i.bos == 1 and i.eos == 2)\n"
              "assert(i.params == PARAMS and i.compute == 'f32', i.params)\n"
              "assert(tostring(M):match('^red%.model%(tiny64, [%d.]+M params%)$'), tostring(M))\n"
              "assert(M:compute() == 'f32' and M:compute('f32') == 'f32')\n"
              "check_error(function() M:compute('f16') end, \"bad argument #1 to 'compute'\")\n"
              "check_error(function() red.load(5) end, \"bad argument #1 to 'load' (string expected, got number)\")\n"
              "check_error(function() red.load() end, \"bad argument #1 to 'load'\")\n"
              "check_error(function() red.load(DIR .. '/missing.gguf') end, 'missing.gguf')\n"
              "check_error(function() red.load(DIR .. '/garbage.gguf') end, 'garbage.gguf')\n"
              "check_error(function() red.load(MODEL, 5) end, \"bad argument #2 to 'load' (table expected\")\n"
              "check_error(function() red.load(MODEL, {tokenizr = 'x'}) end, \"unknown option 'tokenizr'\")\n"
              "check_error(function() red.load(MODEL, {tokenizer = 1}) end, \"option 'tokenizer': string expected, got number\")\n"
              "check_error(function() M.info(5) end, 'red.model expected')\n"
              "local n = red.load(NARROW)\n"
              "assert(n:info().dim == 32 and not n:info().tokenizer and n:info().bos == nil)\n");
}

static void test_tokenize(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L, "assert(same_array(M:tokenize('Hello world'), {15043, 3186}))\n"
              "assert(same_array(M:tokenize('Hello world', {bos = true}), {1, 15043, 3186}))\n"
              "assert(same_array(M:tokenize('Hi', {bos = true, eos = true}), {1, 6324, 2}))\n"
              "assert(#M:tokenize('') == 0)\n"
              "assert(M:detokenize({15043, 3186}) == 'Hello world')\n"
              "assert(M:detokenize({1, 15043, 3186, 2}) == 'Hello world')\n"
              "assert(M:detokenize({}) == '')\n"
              "check_error(function() M:tokenize(5) end, \"bad argument #1 to 'tokenize'\")\n"
              "check_error(function() M:tokenize('x', {bos = 1}) end, \"option 'bos': boolean expected\")\n"
              "check_error(function() M:detokenize({32000}) end, \"bad argument #1 to 'detokenize'\")\n"
              "check_error(function() M:detokenize({'a'}) end, 'element 1 is not an integer')\n"
              "check_error(function() M:detokenize('a') end, 'table expected')\n"
              "local n = red.load(NARROW)\n"
              "check_error(function() n:tokenize('x') end, 'tiny32 has no tokenizer')\n");
}

/* ---- generation ------------------------------------------------------------------- */

static void test_generate(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L,
           "local g = {max_tokens = 12, temperature = 0, stop_at_eos = false}\n"
           "local t1, s1 = M:generate('Once upon a time', g)\n"
           "local t2 = M:generate('Once upon a time', g)\n"
           "assert(type(t1) == 'string' and t1 == t2)\n"
           "assert(s1.tokens == 12 and #s1.ids == 12 and s1.stopped == 'length', s1.stopped)\n"
           "assert(s1.prompt_tokens == #M:tokenize('Once upon a time', {bos = true}))\n"
           "assert(s1.prefill_seconds >= 0 and s1.decode_seconds >= 0)\n"
           "local pieces, ids = {}, {}\n"
           "g.on_token = function(text, id) pieces[#pieces + 1] = text; ids[#ids + 1] = id end\n"
           "local t3, s3 = M:generate('Once upon a time', g)\n"
           "assert(t3 == t1 and table.concat(pieces) == t1 and same_array(ids, s1.ids))\n"
           /* on_token returning false stops */
           "local n = 0\n"
           "g.on_token = function() n = n + 1; return n < 3 end\n"
           "local t4, s4 = M:generate('Once upon a time', g)\n"
           "assert(n == 3 and s4.tokens == 3 and s4.stopped == 'callback', s4.stopped)\n"
           "g.on_token = nil\n"
           /* ids as the prompt; edits = nil is the base model; strength 0 too */
           "local ta = M:generate({1, 9038, 2501, 263, 931}, g)\n"
           "assert(ta == t1)\n"
           "local e = M:edits{sites = 'both'}\n"
           "for l = 0, 1 do local b = {} for i = 1, 64 do b[i] = (i % 5) - 2 end\n"
           "  e:set_vector(l, 'ffn', 'bias', b) end\n"
           "g.edits = e; g.strength = 0\n"
           "assert(M:generate('Once upon a time', g) == t1)\n"
           "g.strength = 1\n"
           "assert(M:generate('Once upon a time', g) ~= t1, 'large biases changed nothing')\n"
           "g.edits = nil; g.strength = nil\n"
           /* template: the prompt part of the data template */
           "g.template = 'red'\n"
           "local tt = M:generate('Name a colour.', g)\n"
           "g.template = nil\n"
           "assert(tt == M:generate('Human: Name a colour.\\n\\nAssistant:', g))\n"
           /* sampling: same seed, same text */
           "local s = {max_tokens = 8, temperature = 1.0, top_k = 50, top_p = 0.9, seed = 5,\n"
           "           repeat_penalty = 1.1, no_repeat_ngram = 3, stop_at_eos = false}\n"
           "assert(M:generate('Hello', s) == M:generate('Hello', s))\n"
           "check_error(function() M:generate(5, g) end, \"bad argument #1 to 'generate' (string or array of ids expected\")\n"
           "check_error(function() M:generate('x', {temperature = 'hot'}) end, \"option 'temperature': number expected, got string\")\n"
           "check_error(function() M:generate('x', {temperature = -1}) end, \"bad argument #2 to 'generate'\")\n"
           "check_error(function() M:generate('x', {max_token = 3}) end, \"unknown option 'max_token'\")\n"
           "check_error(function() M:generate('x', {edits = 3}) end, \"option 'edits': red.edits expected\")\n"
           "check_error(function() M:generate('x', {on_token = 3}) end, \"option 'on_token': function expected\")\n"
           "check_error(function() M:generate({}, g) end, 'at least one id')\n"
           "check_error(function() M:generate({1, 99999}, g) end, 'element 2 (99999) is out of range')\n"
           "check_error(function() M:generate({1}, {template = 'red'}) end, 'needs a text prompt')\n"
           "check_error(function() M:generate('x', {template = '{answer}'}) end, 'template')\n"
           "local narrow = red.load(NARROW)\n"
           "local ne = narrow:edits{}\n"
           "check_error(function() M:generate('x', {edits = ne}) end, 'width 32')\n"
           "check_error(function() narrow:generate('x') end, 'has no tokenizer')\n"
           "local tn, sn = narrow:generate({1, 5}, {max_tokens = 3, temperature = 0, stop_at_eos = false})\n"
           "assert(tn == '' and sn.tokens == 3)\n");
}

static void test_generate_callback_error(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L, "local n = 0\n"
              "local e = check_error(function()\n"
              "  M:generate('Hi', {max_tokens = 20, on_token = function()\n"
              "    n = n + 1; if n == 2 then error('token boom') end end})\n"
              "end, 'token boom')\n"
              "assert(n == 2 and e:find('stack traceback', 1, true), e)\n"
              /* a non-string error object comes through as it is */
              "local ok, obj = pcall(M.generate, M, 'Hi', {on_token = function() error({code = 7}) end})\n"
              "assert(not ok and type(obj) == 'table' and obj.code == 7)\n"
              /* a callback that drops everything from the options and collects garbage */
              "local o = {max_tokens = 6, stop_at_eos = false, edits = M:edits{}}\n"
              "o.on_token = function() o.edits = nil; o.on_token = nil; collectgarbage() end\n"
              "local _, st = M:generate('Hi', o)\n"
              "assert(st.tokens == 6)\n"
              /* the model is usable afterwards */
              "assert(#M:generate('Hi', {max_tokens = 2, stop_at_eos = false}) >= 0)\n");
    /* the error propagates out of the chunk with its traceback */
    run_fails(L, "M:generate('Hi', {max_tokens = 5, on_token = function() error('uncaught') end})",
              "uncaught");
    assert_non_null(strstr(rd_lua_last_error(L), "stack traceback"));
    run_fails(L, "error({})", "(error object is a table value)");
}

/* m:generate_batch gives each request the text m:generate gives it alone (greedy and
 * sampled, base and two edit sets, a strength), fewer slots than requests. */
static void test_generate_batch(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L,
           "local function bias_set(k)\n"
           "  local e = M:edits{sites = 'both'}\n"
           "  for l = 0, 1 do local b = {} for i = 1, 64 do b[i] = ((i * k) % 5) - 2 end\n"
           "    e:set_vector(l, 'ffn', 'bias', b) end\n"
           "  return e end\n"
           "local e1, e2 = bias_set(1), bias_set(3)\n"
           "local reqs = {\n"
           "  {prompt = 'Once upon a time', max_tokens = 8, temperature = 0, stop_at_eos = false},\n"
           "  {prompt = 'Once upon a time', edits = e1, max_tokens = 8, temperature = 0},\n"
           "  {prompt = 'Hello', edits = e2, strength = 0.5, max_tokens = 6, temperature = 0},\n"
           "  {prompt = {1, 9038, 2501}, edits = e2, max_tokens = 5, temperature = 0},\n"
           "  {prompt = 'Hello', edits = e1, max_tokens = 7, temperature = 0.9, seed = 3},\n"
           "}\n"
           "local texts, stats = M:generate_batch(reqs, {parallel = 2})\n"
           "assert(#texts == #reqs and #stats == #reqs)\n"
           "for i, r in ipairs(reqs) do\n"
           "  local o = {} for k, v in pairs(r) do if k ~= 'prompt' then o[k] = v end end\n"
           "  local want, st = M:generate(r.prompt, o)\n"
           "  assert(texts[i] == want, i .. ': ' .. texts[i] .. ' vs ' .. want)\n"
           "  assert(stats[i].tokens == st.tokens and stats[i].stopped == st.stopped)\n"
           "end\n"
           "assert(texts[1] ~= texts[2], 'the edits changed nothing')\n"
           "check_error(function() M:generate_batch({}) end, 'no request given')\n"
           "check_error(function() M:generate_batch({{max_tokens = 2}}) end, 'request 1 needs a prompt')\n"
           "check_error(function() M:generate_batch({5}) end, 'request 1 is a number')\n"
           "check_error(function() M:generate_batch({{prompt = 'x', edit = e1}}) end, \"unknown option 'edit'\")\n"
           "check_error(function() M:generate_batch({{prompt = 'x'}}, {parallel = 0}) end, 'parallel')\n");
}

/* ---- edits ------------------------------------------------------------------------ */

static void test_edits(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L,
           "local e = M:edits{}\n"
           "local i = e:info()\n"
           "assert(i.sites == 'ffn' and i.layers == 'all' and i.scale and i.bias)\n"
           "assert(i.dim == 64 and i.n_layers == 2 and i.params == 256 and e:params() == 256)\n"
           "assert(near(e:ratio(), M:info().params / 256))\n"
           "assert(tostring(e) == 'red.edits(ffn, layers all, scale+bias, 256 params)', tostring(e))\n"
           "assert(M:edits{layers = '1'}:params() == 128)\n"
           "assert(M:edits{layers = {1}}:info().layers == '1')\n"
           "assert(M:edits{layers = {0, 1}}:info().layers == 'all')\n"
           "assert(M:edits{sites = 'both', scale = false}:params() == 256)\n"
           "assert(M:edits{sites = 'attn', bias = false, layers = '0'}:params() == 64)\n"
           "local s = e:vector(1, 'ffn', 'scale')\n"
           "assert(#s == 64 and s[1] == 1 and s[64] == 1)\n"
           "assert(e:vector(0, 'ffn', 'bias')[7] == 0)\n"
           "assert(e:vector(0, 'attn', 'scale') == nil)\n"
           "assert(M:edits{bias = false}:vector(0, 'ffn', 'bias') == nil)\n"
           "local v = {} for k = 1, 64 do v[k] = k / 10 end\n"
           "e:set_vector(1, 'ffn', 'bias', v)\n"
           "assert(near(e:vector(1, 'ffn', 'bias')[64], 6.4))\n"
           "check_error(function() e:set_vector(1, 'ffn', 'bias', {1, 2}) end, '64 numbers expected')\n"
           "check_error(function() e:set_vector(1, 'attn', 'bias', v) end, 'layer 1 attn bias is not stored')\n"
           "v[3] = 'x'\n"
           "check_error(function() e:set_vector(1, 'ffn', 'bias', v) end, 'element 3 is not a finite number')\n"
           "check_error(function() e:vector(2, 'ffn', 'scale') end, \"bad argument #1 to 'vector' (layer 2 is outside [0, 2))\")\n"
           "check_error(function() e:vector(0, 'mlp', 'scale') end, \"bad argument #2 to 'vector' (invalid option 'mlp')\")\n"
           "check_error(function() M:edits{sites = 'mlp'} end, \"option 'sites'\")\n"
           "check_error(function() M:edits{layers = '0-5'} end, 'layer')\n"
           "check_error(function() M:edits{layers = {}} end, \"option 'layers': the array is empty\")\n"
           "check_error(function() M:edits{layers = 3} end, \"option 'layers'\")\n"
           "check_error(function() M:edits{scale = false, bias = false} end, 'scale')\n"
           "check_error(function() M:edits{site = 'ffn'} end, \"unknown option 'site'\")\n"
           "check_error(function() M:edits{'ffn'} end, 'options are named')\n");
}

static void test_edits_files(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L,
           "local e = M:edits{sites = 'both', layers = '1'}\n"
           "local v = {} for k = 1, 64 do v[k] = math.sin(k) end\n"
           "e:set_vector(1, 'attn', 'scale', v)\n"
           "local path = DIR .. '/e.safetensors'\n"
           "e:save(path, '{\"note\": \"test\"}')\n"
           "local back, training = red.load_edits(path, M)\n"
           "assert(training == '{\"note\": \"test\"}', training)\n"
           "assert(tostring(back) == tostring(e))\n"
           "local c = back:compare(e)\n"
           "assert(c.max_abs_scale == 0 and c.max_abs_bias == 0 and c.l2 == 0)\n"
           "assert(near(c.cosine, 1))\n"
           "e:save(path)\n"
           "local _, none = red.load_edits(path, M, {force = true})\n"
           "assert(none == nil)\n"
           /* clone: an independent copy */
           "local k = e:clone()\n"
           "v[1] = 100; k:set_vector(1, 'attn', 'scale', v)\n"
           "assert(e:vector(1, 'attn', 'scale')[1] ~= 100 and k:vector(1, 'attn', 'scale')[1] == 100)\n"
           "assert(k:compare(e).max_abs_scale > 99)\n"
           "assert(e:compare(M:edits{}).cosine == nil)\n" /* the identity has no direction */
           "check_error(function() red.load_edits(DIR .. '/nope.safetensors', M) end, 'nope.safetensors')\n"
           "check_error(function() red.load_edits(path) end, \"bad argument #2 to 'load_edits' (red.model expected\")\n"
           "check_error(function() red.load_edits(path, M, {forse = true}) end, \"unknown option 'forse'\")\n"
           "local narrow = red.load(NARROW)\n"
           "check_error(function() red.load_edits(path, narrow) end, 'width')\n"
           "check_error(function() e:save() end, \"bad argument #1 to 'save'\")\n"
           "check_error(function() e:save(DIR .. '/no/such/dir/x.safetensors') end, 'no/such/dir')\n"
           /* the edits' model closed: saving needs it */
           "local m2 = red.load(MODEL)\n"
           "local e2 = m2:edits{}\n"
           "m2:close()\n"
           "check_error(function() e2:save(path) end, 'attempt to use a closed red.model')\n"
           "check_error(function() e2:ratio() end, 'attempt to use a closed red.model')\n"
           "assert(e2:params() == 256)\n");
}

static void test_arithmetic(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L,
           "math.randomseed(3)\n"
           "local function rnd(lo, hi) local v = {} for i = 1, 64 do v[i] = lo + (hi - lo) * math.random() end return v end\n"
           "local e1 = M:edits{sites = 'both'}\n"
           "for l = 0, 1 do for _, s in ipairs{'ffn', 'attn'} do\n"
           "  e1:set_vector(l, s, 'scale', rnd(0.5, 1.5)); e1:set_vector(l, s, 'bias', rnd(-1, 1)) end end\n"
           "local e2 = M:edits{sites = 'ffn', layers = '1', bias = false}\n"
           "e2:set_vector(1, 'ffn', 'scale', rnd(0.5, 2))\n"
           "local function get(e, l, s, k, i)\n"
           "  local v = e:vector(l, s, k)\n"
           "  if v then return v[i] end\n"
           "  return k == 'scale' and 1 or 0\n"
           "end\n"
           "local function each(f) for l = 0, 1 do for _, s in ipairs{'ffn', 'attn'} do\n"
           "  for i = 1, 64 do f(l, s, i) end end end end\n"
           /* e * k: s' = 1 + k(s - 1), b' = k b (and k * e) */
           "for _, h in ipairs{e1 * 0.5, 0.5 * e1} do\n"
           "  assert(tostring(h) == tostring(e1))\n"
           "  each(function(l, s, i)\n"
           "    assert(near(get(h, l, s, 'scale', i), 1 + 0.5 * (get(e1, l, s, 'scale', i) - 1)))\n"
           "    assert(near(get(h, l, s, 'bias', i), 0.5 * get(e1, l, s, 'bias', i))) end)\n"
           "end\n"
           "assert((e1 * 0):compare(M:edits{sites = 'both'}).l2 == 0)\n"
           "assert((e1 * 1):compare(e1).l2 == 0)\n"
           /* e1 + e2: e1 then e2: s = s2 s1, b = s2 b1 + b2 */
           "local c = e1 + e2\n"
           "assert(c:info().sites == 'both' and c:info().layers == 'all' and c:info().bias)\n"
           "each(function(l, s, i)\n"
           "  local s1, b1 = get(e1, l, s, 'scale', i), get(e1, l, s, 'bias', i)\n"
           "  local s2, b2 = get(e2, l, s, 'scale', i), get(e2, l, s, 'bias', i)\n"
           "  assert(near(get(c, l, s, 'scale', i), s2 * s1))\n"
           "  assert(near(get(c, l, s, 'bias', i), s2 * b1 + b2)) end)\n"
           /* not commutative: e2 + e1 has b = s1 b2 + b1 = b1 */
           "local d = e2 + e1\n"
           "assert(near(get(d, 1, 'ffn', 'bias', 5), get(e1, 1, 'ffn', 'bias', 5)))\n"
           "assert(not near(get(c, 1, 'ffn', 'bias', 5), get(d, 1, 'ffn', 'bias', 5)))\n"
           /* the union layout: e2 (ffn, layer 1, scale) + a bias-only attn set on layer 0 */
           "local e3 = M:edits{sites = 'attn', layers = '0', scale = false}\n"
           "e3:set_vector(0, 'attn', 'bias', rnd(-1, 1))\n"
           "local u = e2 + e3\n"
           "local ui = u:info()\n"
           "assert(ui.sites == 'both' and ui.layers == 'all' and ui.scale and ui.bias)\n"
           "assert(near(get(u, 1, 'ffn', 'scale', 9), get(e2, 1, 'ffn', 'scale', 9)))\n"
           "assert(near(get(u, 0, 'attn', 'bias', 9), get(e3, 0, 'attn', 'bias', 9)))\n"
           "assert(get(u, 0, 'ffn', 'scale', 9) == 1 and get(u, 1, 'attn', 'bias', 9) == 0)\n"
           /* -e: s' = 1/s, b' = -b/s; e + (-e) is the identity */
           "local n = -e1\n"
           "each(function(l, s, i)\n"
           "  local s1, b1 = get(e1, l, s, 'scale', i), get(e1, l, s, 'bias', i)\n"
           "  assert(near(get(n, l, s, 'scale', i), 1 / s1))\n"
           "  assert(near(get(n, l, s, 'bias', i), -b1 / s1)) end)\n"
           "assert((e1 + n):compare(M:edits{sites = 'both'}).l2 < 1e-5)\n"
           /* e1 - e2 = e1 + (-e2): s = s1/s2, b = (b1 - b2)/s2; (e1 - e2) + e2 == e1 */
           "local df = e1 - e2\n"
           "each(function(l, s, i)\n"
           "  local s1, b1 = get(e1, l, s, 'scale', i), get(e1, l, s, 'bias', i)\n"
           "  local s2, b2 = get(e2, l, s, 'scale', i), get(e2, l, s, 'bias', i)\n"
           "  assert(near(get(df, l, s, 'scale', i), s1 / s2))\n"
           "  assert(near(get(df, l, s, 'bias', i), (b1 - b2) / s2)) end)\n"
           "assert(((e1 - e2) + e2):compare(e1).l2 < 1e-5)\n"
           "assert((e1 - e1):compare(M:edits{sites = 'both'}).l2 < 1e-6)\n"
           /* compare: raw differences */
           "local cp = e1:compare(e2)\n"
           "local ms, mb, sq = 0, 0, 0\n"
           "each(function(l, s, i)\n"
           "  local ds = math.abs(get(e1, l, s, 'scale', i) - get(e2, l, s, 'scale', i))\n"
           "  local db = math.abs(get(e1, l, s, 'bias', i) - get(e2, l, s, 'bias', i))\n"
           "  ms = math.max(ms, ds); mb = math.max(mb, db); sq = sq + ds * ds + db * db end)\n"
           "assert(near(cp.max_abs_scale, ms) and near(cp.max_abs_bias, mb) and near(cp.l2, math.sqrt(sq)))\n"
           "assert(cp.cosine > -1 and cp.cosine < 1)\n"
           /* errors */
           "local z = M:edits{}\n"
           "local v = z:vector(0, 'ffn', 'scale'); v[4] = 0; z:set_vector(0, 'ffn', 'scale', v)\n"
           "check_error(function() return -z end, 'the scale of layer 0 ffn is 0 at index 4')\n"
           "check_error(function() return e1 - z end, 'cannot be undone')\n"
           "local narrow = red.load(NARROW)\n"
           "local ne = narrow:edits{}\n"
           "check_error(function() return e1 + ne end, 'edit sets for different models: width 64')\n"
           "check_error(function() return e1 - ne end, 'different models')\n"
           "check_error(function() return e1:compare(ne) end, 'different models')\n"
           "check_error(function() return e1 * e1 end, 'multiplied by a number only')\n"
           "check_error(function() return e1 * 'x' end, 'multiplied by a number only')\n"
           "check_error(function() return e1 + 1 end, 'red.edits expected')\n");
}

/* ---- data sets -------------------------------------------------------------------- */

static void test_dataset(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L,
           "local d = data(TRAIN)\n"
           "assert(d:size() == 48 and #d == 48)\n"
           "assert(tostring(d) == 'red.dataset(48 examples, alpaca)', tostring(d))\n"
           "local i = d:info()\n"
           "assert(i.size == 48 and i.format == 'alpaca' and i.skipped == 0 and i.dropped == 0)\n"
           "assert(i.loss_tokens > 0 and #i.labels == 0)\n"
           "local s = d:sample(1)\n"
           "assert(s.ids[1] == 1 and s.ids[#s.ids] == 2 and #s.loss == #s.ids and s.loss[1] == 0)\n"
           "assert(s.prompt == 'What colour is the apple number 0?\\n' and s.answer == 'The apple is red.', s.prompt .. '|' .. s.answer)\n"
           "assert(s.n_prompt >= 2 and s.loss[s.n_prompt + 1] == 1 and s.loss[s.n_prompt] == 0)\n"
           "assert(s.label == nil)\n"
           "assert(M:detokenize(s.ids) == s.prompt .. s.answer)\n"
           "local a, b = d:split(0.25, 7)\n"
           "assert(a:size() == 36 and b:size() == 12)\n"
           "local a2, b2 = d:split(0.25, 7)\n"
           "assert(same_array(b:sample(3).ids, b2:sample(3).ids))\n"
           "local full = data(TRAIN, {mask_prompt = false})\n"
           "assert(full:sample(1).loss[2] == 1)\n"
           "assert(M:dataset(TRAIN, {template = 'red', max_len = 64}):sample(1).prompt:find('^Human: '))\n"
           "local cls = data(DIR .. '/cls.jsonl')\n"
           "assert(cls:info().format == 'classification' and #cls:info().labels == 2)\n"
           "assert(cls:sample(2).label == 'bad' and cls:sample(2).label_index == 2)\n"
           "local skip = data(DIR .. '/bad.jsonl', {skip_bad_lines = true})\n"
           "assert(#skip == 1 and skip:info().skipped == 1)\n"
           "check_error(function() data(DIR .. '/bad.jsonl') end, 'bad.jsonl:1')\n"
           "check_error(function() data(DIR .. '/none.jsonl') end, 'none.jsonl')\n"
           "check_error(function() red.dataset(TRAIN) end, \"option 'model'\")\n"
           "check_error(function() red.dataset(TRAIN, {model = 5}) end, \"option 'model': red.model expected\")\n"
           "check_error(function() red.dataset(5, {model = M}) end, \"bad argument #1 to 'dataset'\")\n"
           "check_error(function() data(TRAIN, {format = 'csv'}) end, \"option 'format'\")\n"
           "check_error(function() data(TRAIN, {max_len = 1000}) end, \"option 'max_len': 1000 is out of range\")\n"
           "check_error(function() data(TRAIN, {template = 'nonsense'}) end, 'template')\n"
           "check_error(function() data(TRAIN, {formt = 'alpaca'}) end, \"unknown option 'formt'\")\n"
           "check_error(function() d:sample(0) end, \"bad argument #1 to 'sample' (index 0 is outside [1, 48])\")\n"
           "check_error(function() d:sample(49) end, 'outside')\n"
           "check_error(function() d:split(1.5) end, \"bad argument #1 to 'split'\")\n"
           "check_error(function() red.load(NARROW):dataset(TRAIN) end, 'has no tokenizer')\n");
}

/* ---- training, evaluation --------------------------------------------------------- */

static void test_train_eval(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L,
           "local d, ev = data(TRAIN), data(EVAL)\n"
           "local base = red.eval(M, nil, ev)\n"
           "assert(base.loss > 0 and near(base.perplexity, math.exp(base.loss)) and base.tokens > 0)\n"
           "assert(base.accuracy == nil and base.examples == nil)\n"
           "assert(base.bytes > 0 and near(base.bits_per_byte,\n"
           "       base.loss * base.tokens / base.bytes / math.log(2)))\n"
           "local e = M:edits{}\n"
           "local steps, evals = {}, {}\n"
           "local r = red.train{model = M, edits = e, data = d, eval = ev, lr = 0.03, epochs = 2,\n"
           "  batch = 8, micro_batch = 4, warmup = 0.1, seed = 3,\n"
           "  on_step = function(p) steps[#steps + 1] = p end,\n"
           "  on_eval = function(p) evals[#evals + 1] = p end}\n"
           "assert(r.steps == 12 and r.stopped == 'done' and r.message == '', r.message)\n"
           "assert(#r.loss == 12 and #r.eval == 2 and r.eval[2].step == 12)\n"
           "assert(r.final_loss == r.loss[12] and r.seconds > 0 and r.tokens_per_s > 0 and r.tokens > 0)\n"
           "assert(#steps == 12 and steps[1].kind == 'step' and steps[1].step == 1 and steps[12].total_steps == 12)\n"
           "assert(steps[7].epoch == 2 and steps[1].epochs == 2 and steps[3].lr > 0 and steps[3].grad_norm > 0)\n"
           "assert(steps[5].loss == r.loss[5] and steps[1].eval_loss == nil)\n"
           "assert(#evals == 2 and evals[1].kind == 'eval' and type(evals[1].best) == 'boolean')\n"
           "assert(near(evals[2].eval_loss, r.eval[2].loss))\n"
           "assert(evals[2].eval_accuracy == nil and r.eval[2].accuracy == nil) -- no labels\n"
           "assert(r.best_eval_loss <= r.eval[1].loss and (r.best_step == 6 or r.best_step == 12))\n"
           "local after = red.eval(M, e, ev)\n"
           "assert(near(after.loss, r.best_eval_loss, 1e-4), after.loss .. ' vs ' .. r.best_eval_loss)\n"
           "print(('red.train, ffn edits: held-out loss %.3f -> %.3f'):format(base.loss, after.loss))\n"
           "assert(after.loss < 0.9 * base.loss, base.loss .. ' -> ' .. after.loss)\n"
           "assert(near(red.eval(M, e, ev, {strength = 0, batch = 3}).loss, base.loss, 1e-4))\n"
           /* no eval set: best_eval_loss is nil */
           "local r2 = red.train{model = M, edits = M:edits{}, data = d, max_steps = 2, batch = 4,\n"
           "                     group_by_length = true}\n"
           "assert(r2.steps == 2 and r2.best_eval_loss == nil and #r2.eval == 0)\n"
           /* Adam's betas: the first update is the same for any betas (bias correction; up
            * to rounding), the second is not, so the third step's loss tells */
           "local rb = {}\n"
           "for i, b2 in ipairs{0.999, 0.5} do\n"
           "  rb[i] = red.train{model = M, edits = M:edits{}, data = d, max_steps = 3, batch = 4,\n"
           "                    beta2 = b2}\n"
           "end\n"
           "local function rel(a, b) return math.abs(a - b) / math.abs(a) end\n"
           "assert(rel(rb[1].loss[2], rb[2].loss[2]) < 1e-6, 'beta2 changed the first update')\n"
           "assert(rel(rb[1].loss[3], rb[2].loss[3]) > 1e-5, 'beta2 had no effect')\n"
           /* dropout changes the first step's training loss */
           "local rd = red.train{model = M, edits = M:edits{}, data = d, max_steps = 1, batch = 4,\n"
           "                     dropout = 0.3}\n"
           "assert(rel(rb[1].loss[1], rd.loss[1]) > 1e-4, 'dropout had no effect')\n"
           /* classification metrics */
           "local cls = data(DIR .. '/cls.jsonl')\n"
           "local m = red.eval(M, nil, cls)\n"
           "assert(m.examples == 4 and m.accuracy >= 0 and m.accuracy <= 1 and m.mcc and m.f1)\n"
           /* training with a classification eval set reports accuracy at every evaluation */
           "local ce = {}\n"
           "local rc = red.train{model = M, edits = M:edits{}, data = cls, eval = cls, epochs = 2,\n"
           "  batch = 2, on_eval = function(p) ce[#ce + 1] = p.eval_accuracy end}\n"
           "assert(#rc.eval == 2 and #ce == 2 and rc.eval[2].accuracy == ce[2])\n"
           "assert(ce[1] >= 0 and ce[1] <= 1 and ce[2] * 4 == math.floor(ce[2] * 4))\n"
           "assert(rc.best_eval_accuracy == math.max(ce[1], ce[2]) and r.best_eval_accuracy == nil)\n"
           /* errors */
           /* no edits: RED's default set (ffn, all layers) made from the options */
           "assert(tostring(red.train{model = M, data = d, max_steps = 1}.edits) == 'red.edits(ffn, layers all, scale+bias, 256 params)')\n"
           "check_error(function() red.train{model = M, edits = e, data = d, full = true} end, \"option 'full'\")\n"
           "check_error(function() red.train{model = M, edits = e} end, \"option 'data': a red.dataset is required\")\n"
           "check_error(function() red.train{edits = e, data = d} end, \"option 'model'\")\n"
           "check_error(function() red.train{model = M, edits = e, data = d, lr = 'big'} end, \"option 'lr': number expected, got string\")\n"
           "check_error(function() red.train{model = M, edits = e, data = d, lr = -1} end, \"bad argument #1 to 'train'\")\n"
           "check_error(function() red.train{model = M, edits = e, data = d, epochs = 1.5} end, \"option 'epochs': integer expected\")\n"
           "check_error(function() red.train{model = M, edits = e, data = d, schedule = 'step'} end, \"option 'schedule'\")\n"
           "check_error(function() red.train{model = M, edits = e, data = d, beta2 = 1} end, 'Adam betas')\n"
           "check_error(function() red.train{model = M, edits = e, data = d, dropout = 1} end, 'dropout 1 must be in')\n"
           "check_error(function() red.train{model = M, edits = e, data = d, compute = 'f16'} end, \"option 'compute'\")\n"
           "check_error(function() red.train{model = M, edits = e, data = d, on_step = 1} end, \"option 'on_step': function expected\")\n"
           "check_error(function() red.train{model = M, edits = e, data = d, epoch = 1} end, \"unknown option 'epoch'\")\n"
           "check_error(function() red.train(5) end, \"bad argument #1 to 'train' (table expected\")\n"
           "local narrow = red.load(NARROW)\n"
           "check_error(function() red.train{model = M, edits = narrow:edits{}, data = d} end, 'width 32')\n"
           "check_error(function() red.eval(M, narrow:edits{}, d) end, 'width 32')\n"
           "check_error(function() red.eval(M, 5, d) end, \"bad argument #2 to 'eval' (red.edits or nil expected, got number)\")\n"
           "check_error(function() red.eval(M, nil, nil) end, \"bad argument #3 to 'eval'\")\n"
           "check_error(function() red.eval(M, nil, d, {batch = 0}) end, \"option 'batch'\")\n"
           "check_error(function() red.eval(M, nil, d, {strenght = 1}) end, \"unknown option 'strenght'\")\n");
}

/* red.eval on a multiple-choice file (its scores are checked against teacher forcing in
 * test_mc and tests/cli/mc.sh), the per-item file, red.mcnemar. */
static void test_eval_mc(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L, "local r = red.eval(M, nil, DIR .. '/mc.jsonl', {per_item = DIR .. '/per.jsonl'})\n"
              "assert(r.items == 2 and r.style == 'context/choices/gold')\n"
              "assert(#r.correct == 2 and #r.correct_norm == 2)\n"
              "local n = 0 for _, c in ipairs(r.correct) do if c then n = n + 1 end end\n"
              "assert(r.acc == n / 2 and r.acc_norm >= 0 and r.acc_norm <= 1)\n"
              "local lines = 0 for l in io.lines(DIR .. '/per.jsonl') do lines = lines + 1 end\n"
              "assert(lines == 2)\n"
              /* edits at strength 0 score as the base model */
              "local z = red.eval(M, M:edits{}, DIR .. '/mc.jsonl', {strength = 0})\n"
              "assert(z.acc == r.acc and z.acc_norm == r.acc_norm)\n"
              "assert(math.abs(red.mcnemar(1, 9) - 22 / 1024) < 1e-12 and red.mcnemar(0, 0) == 1)\n"
              "check_error(function() red.eval(M, nil, DIR .. '/train.jsonl') end, 'train.jsonl line 1: not a multiple-choice item')\n"
              "check_error(function() red.eval(M, nil, DIR .. '/mc.jsonl', {batch = 2}) end, \"unknown option 'batch'\")\n"
              "check_error(function() red.mcnemar(-1, 2) end, \"bad argument #1 to 'mcnemar'\")\n");
}

static void test_train_compute(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    /* bf16 needs AVX512-BF16: either it trains or the engine's refusal comes out */
    run_ok(L, "local d = data(TRAIN)\n"
              "local ok, err = pcall(red.train, {model = M, edits = M:edits{}, data = d,\n"
              "                                  max_steps = 1, batch = 4, compute = 'bf16'})\n"
              "if ok then assert(M:compute() == 'bf16' and err.steps == 1)\n"
              "else assert(err:find('AVX512%-BF16'), err) end\n"
              "red.train{model = M, edits = M:edits{}, data = d, max_steps = 1, batch = 4, compute = 'f32'}\n"
              "assert(M:compute() == 'f32')\n");
}

static void test_train_stop_from_on_step(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L, "local d = data(TRAIN)\n"
              "local seen = 0\n"
              "local r = red.train{model = M, edits = M:edits{}, data = d, epochs = 5, batch = 4,\n"
              "  on_step = function(p) seen = p.step; if p.step == 3 then return false end end}\n"
              "assert(r.steps == 3 and seen == 3 and r.stopped == 'requested', r.stopped)\n"
              "assert(r.message:find('stopped on request'), r.message)\n"
              /* true / nil keep going; on_eval returning false stops too */
              "local r2 = red.train{model = M, edits = M:edits{}, data = d, batch = 4, eval = data(EVAL),\n"
              "  eval_every = 2, max_steps = 9, on_step = function() return true end,\n"
              "  on_eval = function(p) return p.step < 4 end}\n"
              "assert(r2.steps == 4 and r2.stopped == 'requested' and #r2.eval == 2)\n");
    /* state = path: a stopped run resumes where it stopped and ends as the whole run */
    run_ok(L, "local d = data(TRAIN)\n"
              "local path = os.tmpname()\n"
              "os.remove(path)\n"
              "local function run(state, on_step)\n"
              "  local e = M:edits{}\n"
              "  return red.train{model = M, edits = e, data = d, epochs = 2, batch = 4, lr = 0.02,\n"
              "                   state = state, on_step = on_step}, e\n"
              "end\n"
              "local whole, ew = run(nil)\n"
              "local part = run(path, function(p) if p.step == 3 then return false end end)\n"
              "assert(part.steps == 3 and part.stopped == 'requested' and part.resumed_step == nil)\n"
              "local rest, er = run(path)\n"
              "os.remove(path)\n"
              "assert(rest.resumed_step == 3 and rest.steps == whole.steps, rest.steps)\n"
              "for i = 1, whole.steps do assert(rest.loss[i] == whole.loss[i], i) end\n"
              "local c = ew:compare(er)\n"
              "assert(c.max_abs_scale == 0 and c.max_abs_bias == 0)\n");
}

static void test_train_callback_errors(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L, "local d, ev = data(TRAIN), data(EVAL)\n"
              "local e = M:edits{}\n"
              "local msg = check_error(function()\n"
              "  red.train{model = M, edits = e, data = d, batch = 4, epochs = 3,\n"
              "    on_step = function(p) if p.step == 2 then error('step boom') end end}\n"
              "end, 'step boom')\n"
              "assert(msg:find('stack traceback', 1, true), msg)\n"
              "check_error(function()\n"
              "  red.train{model = M, edits = e, data = d, eval = ev, batch = 8, epochs = 2,\n"
              "    on_eval = function(p) local x = nil; return x.field end}\n"
              "end, 'attempt to index a nil value')\n"
              /* a callback may not close what training uses */
              "check_error(function()\n"
              "  red.train{model = M, edits = e, data = d, batch = 8,\n"
              "    on_step = function() e:close() end}\n"
              "end, 'cannot close a red.edits while it is in use')\n"
              "check_error(function()\n"
              "  red.train{model = M, edits = e, data = d, batch = 8,\n"
              "    on_step = function() M:close() end}\n"
              "end, 'cannot close a red.model while it is in use')\n"
              "check_error(function()\n"
              "  red.train{model = M, edits = e, data = d, batch = 8,\n"
              "    on_step = function() d:close() end}\n"
              "end, 'cannot close a red.dataset while it is in use')\n"
              "check_error(function()\n"
              "  M:generate('Hi', {max_tokens = 4, on_token = function() M:compute('f32') end})\n"
              "end, 'in use')\n"
              /* everything still works afterwards */
              "local r = red.train{model = M, edits = e, data = d, batch = 8, max_steps = 2}\n"
              "assert(r.steps == 2 and e:params() == 256)\n");
    /* uncaught: the chunk fails with the callback's message */
    run_fails(L, "red.train{model = M, edits = M:edits{}, data = data(TRAIN), batch = 8,\n"
                 "  on_step = function() error('raised in on_step') end}",
              "raised in on_step");
}

static void test_full_finetuning(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L, "local m = red.load(MODEL)\n"
              "local d = red.dataset(TRAIN, {model = m, template = 'plain', max_len = 64})\n"
              "local before = red.eval(m, nil, d).loss\n"
              "local r = red.train{model = m, full = true, data = d, batch = 8, max_steps = 3, lr = 1e-3}\n"
              "assert(r.steps == 3 and r.stopped == 'done')\n"
              "local after = red.eval(m, nil, d).loss\n"
              "assert(after < before, before .. ' -> ' .. after)\n"
              "assert(#m:generate('Hi', {max_tokens = 2, stop_at_eos = false}) >= 0)\n"
              "-- bf16 compute (f32 master weights) trains where the CPU has AVX512-BF16, else\n"
              "-- the engine's refusal names bf16\n"
              "local ok, r2 = pcall(red.train, {model = m, full = true, data = d, compute = 'bf16',\n"
              "                                 max_steps = 1, batch = 4})\n"
              "if ok then assert(m:compute() == 'bf16' and r2.steps == 1)\n"
              "else assert(tostring(r2):find('bf16'), r2) end\n");
}

/* LoRA and IA3 edit sets: m:edits{method = ...}, e:info(), red.train{method = ...} making the
 * set from the options, files, strength, generation, and what is RED's alone. The tiny model:
 * dim 64, hidden 172, 2 layers, 4 heads, 2 kv heads (kv_dim 32). */
static void test_methods(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L,
           "local e = M:edits{method = 'lora', rank = 2, lora_alpha = 4, targets = 'q,v', dropout = 0.1}\n"
           "local i = e:info()\n"
           "assert(i.method == 'lora' and i.rank == 2 and i.lora_alpha == 4 and i.targets == 'q,v', i.targets)\n"
           "assert(i.dropout == 0.1 and i.layers == 'all' and i.sites == nil, tostring(i.dropout))\n"
           "-- q: A 2x64 + B 64x2; v: A 2x64 + B 32x2; 2 layers\n"
           "assert(e:params() == 896 and i.params == 896, e:params())\n"
           "assert(near(e:ratio(), M:info().params / 896) and near(i.ratio, e:ratio()))\n"
           "assert(tostring(e) == 'red.edits(lora r2 alpha 4 q,v, layers all, 896 params)', tostring(e))\n"
           "local d = M:edits{method = 'lora'}:info()\n"
           "assert(d.rank == 8 and d.lora_alpha == 8 and d.targets == 'q,v' and d.dropout == 0)\n"
           "assert(M:edits{method = 'lora', targets = {'o', 'down'}, layers = '1'}:info().targets == 'o,down')\n"
           "assert(M:edits{method = 'lora', targets = 'all', rank = 1}:info().targets == 'q,k,v,o,gate,up,down')\n"
           "local ia3 = M:edits{method = 'ia3'}\n"
           "assert(ia3:params() == 2 * (32 + 32 + 172) and ia3:info().method == 'ia3')\n"
           "assert(tostring(ia3) == 'red.edits(ia3, layers all, 472 params)', tostring(ia3))\n"
           "assert(M:edits{}:info().method == 'red' and M:edits{method = 'red', sites = 'attn'}:params() == 256)\n"
           "check_error(function() M:edits{method = 'ia3', rank = 2} end, \"option 'rank': is lora's\")\n"
           "check_error(function() M:edits{method = 'lora', sites = 'ffn'} end, \"option 'sites': is red's\")\n"
           "check_error(function() M:edits{method = 'dora'} end, \"option 'method'\")\n"
           "check_error(function() M:edits{method = 'lora', targets = 'q,x'} end, \"option 'targets'\")\n"
           "check_error(function() M:edits{method = 'lora', rank = 0} end, \"option 'rank'\")\n"
           "check_error(function() M:edits{method = 'lora', dropout = 1} end, \"option 'dropout'\")\n"
           "check_error(function() return e + e end, 'defined for RED edit sets')\n"
           "check_error(function() return e:vector(0, 'ffn', 'scale') end, 'defined for RED edit sets')\n"
           "check_error(function() return ia3:compare(ia3) end, 'defined for RED edit sets')\n"
           "-- training from the options: the edit set comes back in the result\n"
           "local tr = data(TRAIN)\n"
           "local base = red.eval(M, nil, tr).loss\n"
           "for _, method in ipairs({'lora', 'ia3'}) do\n"
           "  local r = red.train{model = M, method = method, data = tr, batch = 8, max_steps = 4,\n"
           "                      lr = method == 'lora' and 1e-2 or 5e-2, rank = method == 'lora' and 4 or nil}\n"
           "  assert(r.method == method and r.steps == 4 and r.edits:info().method == method)\n"
           "  assert(r.params == r.edits:params() and near(r.ratio, r.edits:ratio()))\n"
           "  local after = red.eval(M, r.edits, tr).loss\n"
           "  assert(after < base, method .. ': ' .. base .. ' -> ' .. after)\n"
           "  assert(red.eval(M, r.edits, tr, {strength = 0}).loss == base, 'strength 0 is the base')\n"
           "  assert(red.eval(M, r.edits * 0, tr).loss == base, 'e * 0 is the identity')\n"
           "  local mid = red.eval(M, r.edits * 0.5, tr).loss\n"
           "  assert(near(mid, red.eval(M, r.edits, tr, {strength = 0.5}).loss, 1e-4), 'e * k = strength k')\n"
           "  local g0 = M:generate('Hi', {max_tokens = 4, stop_at_eos = false})\n"
           "  assert(M:generate('Hi', {max_tokens = 4, stop_at_eos = false, edits = r.edits, strength = 0}) == g0)\n"
           "  local _, st = M:generate('Hi', {max_tokens = 4, stop_at_eos = false, edits = r.edits})\n"
           "  assert(st.tokens == 4)\n"
           "  local path = DIR .. '/m_' .. method .. '.safetensors'\n"
           "  r.edits:save(path)\n"
           "  local back = red.load_edits(path, M)\n"
           "  assert(back:info().method == method and back:params() == r.edits:params())\n"
           "  assert(red.eval(M, back, tr).loss == after, 'the file holds the trained numbers')\n"
           "  -- a given edit set keeps its method and shape\n"
           "  check_error(function() red.train{model = M, edits = back, data = tr, max_steps = 1,\n"
           "    method = method == 'lora' and 'ia3' or 'lora'} end, 'the edits given are')\n"
           "  check_error(function() red.train{model = M, edits = back, data = tr, max_steps = 1,\n"
           "    layers = '0'} end, 'the edits given have their shape')\n"
           "  red.train{model = M, edits = back, method = method, data = tr, max_steps = 1}\n"
           "end\n"
           "assert(red.train{model = M, data = tr, max_steps = 1, sites = 'attn'}.edits:info().sites == 'attn')\n"
           "assert(red.train{model = M, data = tr, max_steps = 1, method = 'lora', targets = {'k'}, rank = 1,\n"
           "                 lora_dropout = 0.2}.edits:info().targets == 'k')\n"
           "check_error(function() red.train{model = M, data = tr, max_steps = 1, method = 'ia3', rank = 2} end,\n"
           "            \"option 'rank': is lora's\")\n"
           "check_error(function() red.train{model = M, data = tr, full = true, method = 'lora'} end, \"option 'full'\")\n"
           "check_error(function() red.train{model = M, data = tr, method = 'full', rank = 2} end,\n"
           "            'full fine-tuning trains every weight')\n"
           "check_error(function() red.train{model = M, data = tr, method = 'full', edits = e} end, 'give no edits')\n"
           "-- method = 'full' is full = true: the model's weights change\n"
           "local m2 = red.load(MODEL)\n"
           "local d2 = red.dataset(TRAIN, {model = m2, template = 'plain', max_len = 64})\n"
           "local b2 = red.eval(m2, nil, d2).loss\n"
           "local rf = red.train{model = m2, method = 'full', data = d2, batch = 8, max_steps = 3, lr = 1e-3}\n"
           "assert(rf.method == 'full' and rf.ratio == 1 and rf.params == m2:info().params and rf.edits == nil)\n"
           "assert(red.eval(m2, nil, d2).loss < b2)\n");
}

/* ---- closing ---------------------------------------------------------------------- */

static void test_close(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    run_ok(L, "do\n"
              "  local m <close> = red.load(MODEL)\n"
              "  local e <close> = m:edits{}\n"
              "  local d <close> = red.dataset(TRAIN, {model = m, max_len = 64})\n"
              "  KEPT_M, KEPT_E, KEPT_D = m, e, d\n"
              "  assert(m:info().dim == 64)\n"
              "end\n"
              "assert(tostring(KEPT_M) == 'red.model(closed)' and tostring(KEPT_E) == 'red.edits(closed)')\n"
              "assert(tostring(KEPT_D) == 'red.dataset(closed)')\n"
              "check_error(function() KEPT_M:info() end, 'attempt to use a closed red.model')\n"
              "check_error(function() KEPT_M:generate('x') end, 'attempt to use a closed red.model')\n"
              "check_error(function() KEPT_E:params() end, 'attempt to use a closed red.edits')\n"
              "check_error(function() return KEPT_E * 2 end, 'attempt to use a closed red.edits')\n"
              "check_error(function() KEPT_D:size() end, 'attempt to use a closed red.dataset')\n"
              "check_error(function() return #KEPT_D end, 'attempt to use a closed red.dataset')\n"
              "check_error(function() red.eval(M, nil, KEPT_D) end, 'attempt to use a closed red.dataset')\n"
              "check_error(function() red.train{model = KEPT_M, edits = M:edits{}, data = data(TRAIN)} end,\n"
              "            'attempt to use a closed red.model')\n"
              "check_error(function() red.train{model = M, edits = KEPT_E, data = data(TRAIN)} end,\n"
              "            'attempt to use a closed red.edits')\n"
              "KEPT_M:close(); KEPT_E:close(); KEPT_D:close()\n" /* closing twice is fine */
              "local e = M:edits{}\n"
              "e:close()\n"
              "check_error(function() M:generate('x', {edits = e}) end, 'attempt to use a closed red.edits')\n"
              /* an error in a block still closes */
              "local ok = pcall(function() local m <close> = red.load(MODEL); KEPT_M = m; error('x') end)\n"
              "assert(not ok and tostring(KEPT_M) == 'red.model(closed)')\n"
              /* the garbage collector frees what nobody closed */
              "for i = 1, 3 do local m = red.load(MODEL); local e = m:edits{}; local _ = e + e end\n"
              "collectgarbage(); collectgarbage()\n");
}

/* ---- stop requests ---------------------------------------------------------------- */

typedef struct stopper {
    lua_State *L;
    int delay_ms;
} stopper;

static void *stop_later(void *arg) {
    const stopper *s = arg;
    struct timespec ts = {.tv_sec = s->delay_ms / 1000, .tv_nsec = (long)(s->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    rd_lua_request_stop(s->L);
    return NULL;
}

static void test_stop_requests(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    /* requested before the run: the endless loop is interrupted */
    rd_lua_request_stop(L);
    run_fails(L, "while true do end", "interrupted");
    run_ok(L, "X = 1"); /* the flag was cleared when the chunk ended */
    /* from another thread, during an endless loop */
    stopper s = {.L = L, .delay_ms = 150};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, &s), 0);
    run_fails(L, "local n = 0 while true do n = n + 1 end", "interrupted");
    pthread_join(th, NULL);
    /* pcall inside the script does not swallow it for long: the flag stays set */
    assert_int_equal(pthread_create(&th, NULL, stop_later, &s), 0);
    run_fails(L, "while true do pcall(function() while true do end end) end", "interrupted");
    pthread_join(th, NULL);
    /* during training (long), from another thread: training stops and red.train raises */
    s.delay_ms = 400;
    assert_int_equal(pthread_create(&th, NULL, stop_later, &s), 0);
    run_fails(L, "T0 = os.clock()\n"
                 "red.train{model = M, edits = M:edits{}, data = data(TRAIN), epochs = 1000, batch = 4}",
              "interrupted");
    pthread_join(th, NULL);
    run_ok(L, "assert(os.clock() - T0 < 60)");
    /* during generation */
    assert_int_equal(pthread_create(&th, NULL, stop_later, &s), 0);
    run_fails(L, "for i = 1, 1000 do M:generate('Hi', {max_tokens = 120, stop_at_eos = false}) end",
              "interrupted");
    pthread_join(th, NULL);
    rd_lua_clear_stop(L);
    run_ok(L, "assert(M:info().dim == 64)");
}

/* ---- scripts ---------------------------------------------------------------------- */

static void test_run_file(void **state) {
    lua_State *L = ((fixture *)*state)->L;
    char path[700], bin[700];
    snprintf(path, sizeof path, "%s/script.lua", g_dir);
    write_file("script.lua", "local a, b = ...\n"
                             "assert(select('#', ...) == 2 and a == 'one' and b == '2')\n"
                             "assert(arg[0]:find('script.lua$') and arg[1] == 'one' and arg[2] == '2')\n"
                             "RESULT = red.load(MODEL):info().dim\n");
    char *argv[] = {"one", "2"};
    rd_error err = {0};
    assert_int_equal(rd_lua_run_file(L, path, 2, argv, &err), 0);
    run_ok(L, "assert(RESULT == 64)");
    assert_string_equal(rd_lua_last_error(L), "");
    write_file("fails.lua", "local function inner() error('script failed') end\ninner()\n");
    snprintf(path, sizeof path, "%s/fails.lua", g_dir);
    assert_int_equal(rd_lua_run_file(L, path, 0, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "fails.lua:1: script failed"));
    assert_non_null(strstr(rd_lua_last_error(L), "stack traceback"));
    assert_non_null(strstr(rd_lua_last_error(L), "in local 'inner'"));
    write_file("syntax.lua", "x = = 1\n");
    snprintf(path, sizeof path, "%s/syntax.lua", g_dir);
    assert_int_equal(rd_lua_run_file(L, path, 0, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "syntax.lua:1:"));
    snprintf(path, sizeof path, "%s/absent.lua", g_dir);
    assert_int_equal(rd_lua_run_file(L, path, 0, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "absent.lua"));
    /* precompiled chunks are refused */
    snprintf(bin, sizeof bin, "%s/binary.luac", g_dir);
    char code[1600];
    snprintf(code, sizeof code,
             "local f = assert(io.open('%s', 'wb')); f:write(string.dump(function() X = 1 end)); f:close()",
             bin);
    run_ok(L, code);
    assert_int_equal(rd_lua_run_file(L, bin, 0, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "binary"));
    assert_int_equal(rd_lua_run_string(L, "\x1bLua", "=bin", &err), -1);
    /* rd_lua_add_path: require finds modules there */
    write_file("helper_mod.lua", "return {answer = 42}\n");
    assert_int_equal(rd_lua_add_path(L, g_dir, &err), 0);
    run_ok(L, "assert(require('helper_mod').answer == 42)");
}

/* ---- the data layer's prompt renderer ---------------------------------------------- */

static void test_render_prompt(void **state) {
    (void)state;
    rd_error err = {0};
    const char *tp = shared_fixture("llama2-tokenizer/tokenizer.bin");
    if (!tp) fail_msg("the Llama-2 tokenizer fixture is missing");
    rd_tokenizer *tok = rd_tokenizer_load_llama2c(tp, 32000, &err);
    assert_non_null(tok);
    char *s = rd_data_render_prompt("red", NULL, "Hi there", tok, &err);
    assert_string_equal(s, "Human: Hi there\n\nAssistant:");
    free(s);
    s = rd_data_render_prompt("red", NULL, "Hi there", NULL, &err);
    assert_string_equal(s, "Human: Hi there\n\nAssistant: ");
    free(s);
    s = rd_data_render_prompt("llama2-chat", "Be brief.", "Hi", tok, &err);
    assert_string_equal(s, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]");
    free(s);
    s = rd_data_render_prompt(NULL, NULL, "Do it.", tok, &err); /* alpaca: no space rule */
    assert_non_null(strstr(s, "### Instruction:\nDo it.\n\n### Response:\n"));
    free(s);
    s = rd_data_render_prompt("Q: {prompt} A:  {answer}", NULL, "x", tok, &err);
    assert_string_equal(s, "Q: x A:  "); /* two spaces: kept */
    free(s);
    assert_null(rd_data_render_prompt("{answer} only", NULL, "x", tok, &err));
    assert_non_null(strstr(err.msg, "template"));
    rd_tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_module, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokenize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generate_callback_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generate_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edits_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arithmetic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_eval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_mc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_compute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_stop_from_on_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_callback_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_finetuning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_file, setup, teardown),
        cmocka_unit_test(test_render_prompt),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
