// The `openai` npm package (OpenAI's own Node client, installed by tests/cli/serve.sh into the
// build folder) against `redit serve`: a chat completion, a streamed completion and
// models.list. Reads OPENAI_BASE_URL, OPENAI_API_KEY, MODEL (an edit set) and BASE_ID (the
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
  }));
}

main().catch((e) => {
  console.error(`openai_client: ${e.stack || e}`);
  process.exit(1);
});
