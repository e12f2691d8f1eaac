// Drives gwproxy with the official openai npm client (pinned in the
// repository's package-lock.json). Usage: node openai_client.mjs SCENARIO
// with GWPROXY_BASE_URL (ending in /v1), GWPROXY_API_KEY and GWPROXY_MODEL
// in the environment. Prints one JSON object: what the client saw.
// (Embeddings ask for floats: the fake provider does not encode base64.)
import OpenAI, { AuthenticationError } from 'openai';

const client = new OpenAI({
  baseURL: process.env.GWPROXY_BASE_URL,
  apiKey: process.env.GWPROXY_API_KEY,
  maxRetries: 0,
  timeout: 20000,
});
const model = process.env.GWPROXY_MODEL || 'gateway';
const messages = [{ role: 'user', content: 'hi' }];
const out = { scenario: process.argv[2] };

try {
  switch (process.argv[2]) {
    case 'chat': {
      const { data, response } = await client.chat.completions.create({ model, messages }).withResponse();
      out.text = data.choices[0].message.content;
      out.target = response.headers.get('x-gwtransport-target');
      break;
    }
    case 'stream': {
      const { data: stream, response } = await client.chat.completions.create({ model, messages, stream: true }).withResponse();
      out.target = response.headers.get('x-gwtransport-target');
      out.text = '';
      out.chunks = 0;
      for await (const chunk of stream) {
        out.chunks++;
        out.text += chunk.choices[0]?.delta?.content ?? '';
      }
      break;
    }
    case 'responses': {
      const { data, response } = await client.responses.create({ model, input: 'hi' }).withResponse();
      out.text = data.output_text;
      out.target = response.headers.get('x-gwtransport-target');
      break;
    }
    case 'embeddings': {
      const { data, response } = await client.embeddings.create({ model, input: 'hi', encoding_format: 'float' }).withResponse();
      out.dims = data.data[0].embedding.length;
      out.target = response.headers.get('x-gwtransport-target');
      break;
    }
    default:
      throw new Error('unknown scenario ' + process.argv[2]);
  }
} catch (e) {
  out.error = e.constructor.name;
  out.status = e.status ?? 0;
  out.auth = e instanceof AuthenticationError;
  out.message = String(e.message);
}
console.log(JSON.stringify(out));
