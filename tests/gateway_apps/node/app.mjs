// A Node.js application instrumented by someone else's package, not costspan, exporting OTLP/HTTP.
// Usage: node app.mjs openai-openllmetry|vercel-ai GATEWAY_URL BASE_URL CALLS
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

const [app, endpoint, baseURL, callsText] = process.argv.slice(2);
const calls = Number(callsText);
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': `node-${app}` }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))],
});
provider.register();

if (app === 'openai-openllmetry') {
  const { OpenAIInstrumentation } = await import('@traceloop/instrumentation-openai');
  const { default: OpenAI } = await import('openai');
  const instrumentation = new OpenAIInstrumentation();
  instrumentation.setTracerProvider(provider);
  instrumentation.manuallyInstrument(OpenAI);
  const client = new OpenAI({ baseURL, apiKey: 'test-key', maxRetries: 0 });
  for (let i = 0; i < calls; i++) {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hi' }] });
  }
} else if (app === 'vercel-ai') {
  const { generateText } = await import('ai');
  const { createOpenAI } = await import('@ai-sdk/openai');
  const openai = createOpenAI({ baseURL, apiKey: 'test-key' });
  for (let i = 0; i < calls; i++) {
    await generateText({
      model: openai.chat('gpt-4o-mini'),
      prompt: 'Say hi',
      maxRetries: 0,
      experimental_telemetry: { isEnabled: true, metadata: { userId: 'u-7', feature: 'greeting' } },
    });
  }
} else {
  throw new Error(`unknown app ${app}`);
}
await provider.shutdown();
