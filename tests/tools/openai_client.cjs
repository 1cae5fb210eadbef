// The `openai` npm package (OpenAI's own Node client, installed by tests/cli/serve.sh into the
// build folder) against `redit serve`: a chat completion, a streamed completion,
// models.list, and a chat with logprobs (whole and streamed). Reads OPENAI_BASE_URL, OPENAI_API_KEY, MODEL (an edit set) and BASE_ID (the
// base model's id); prints one JSON line with what it got; exits 1 on any failure.
const OpenAI = require("openai");

async function main() {
  const client = new OpenAI({ maxRetries: 0, timeout: 30000 });
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  const chat = await client.chat.completions.create({
    model: process.env.MODEL,
    messages: [{ role: "user", content: "Name item 3." }],
    temperature: 0,
    max_tokens: 24,
  });
  const stream = await client.completions.create({
    model: process.env.BASE_ID,
    prompt: "Once upon a time",
    temperature: 0,
    max_tokens: 24,
    stream: true,
  });
  let streamed = "";
  let finish = null;
  for await (const chunk of stream) {
    streamed += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  // logprobs as the client types them: the chat answer's content list, and a streamed
  // chat's chunks adding up to the same list
  const lpRequest = {
    model: process.env.MODEL,
    messages: [{ role: "user", content: "Name item 3." }],
    temperature: 0,
    max_tokens: 6,
    logprobs: true,
    top_logprobs: 2,
  };
  const lp = await client.chat.completions.create(lpRequest);
  const lpStream = await client.chat.completions.create({ ...lpRequest, stream: true });
  const streamedLp = [];
  for await (const chunk of lpStream) {
    const c = chunk.choices[0];
    if (c && c.logprobs && c.logprobs.content) streamedLp.push(...c.logprobs.content);
  }
  let notFound = null;
  try {
    await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 1 });
  } catch (e) {
    notFound = { status: e.status, code: e.code };
  }
  console.log(JSON.stringify({
    models,
    chat: chat.choices[0].message.content,
    chat_finish: chat.choices[0].finish_reason,
    usage: chat.usage,
    streamed,
    finish,
    notFound,
    logprobs: lp.choices[0].logprobs.content,
    logprobs_tokens: lp.usage.completion_tokens,
    streamed_logprobs: streamedLp,
  }));
}

main().catch((e) => {
  console.error(`openai_client: ${e.stack || e}`);
  process.exit(1);
});
