// F15: no absolute server path reaches a client — not in debugoutput, debugerror, nor a validation
// message. The data folder reads $LIKENESS_HOME; any other absolute path is cut to its last segments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { defaultTools } from '../../src/tools/index.js';
import { createAvailability } from '../../src/tools/catalog.js';
import { instantIdControlnetLora } from '../../src/tools/instant-id-controlnet-lora.js';
import type { ServiceTool } from '../../src/service/context.js';
import type { ToolRunner } from '../../src/service/runner.js';
import { redactPaths } from '../../src/service/redact.js';
import { startTestService, waitForTerminal, scriptedTool } from '../helpers/service.js';

test('redactPaths keeps URLs and relative names, hides the data folder and other absolute paths', () => {
  const home = '/srv/likeness-data';
  assert.equal(redactPaths('saved as /srv/likeness-data/models/loras/x.safetensors', home), 'saved as $LIKENESS_HOME/models/loras/x.safetensors');
  assert.equal(redactPaths("ENOENT: open '/opt/app/node_modules/ort/model.onnx'", home), "ENOENT: open '…/ort/model.onnx'");
  assert.equal(redactPaths('inputImageUrl https://images.example/a/b/c.png answered 404', home), 'inputImageUrl https://images.example/a/b/c.png answered 404');
  assert.equal(redactPaths('see models/loras/x.safetensors', home), 'see models/loras/x.safetensors');
  // A short data folder such as /data is not replaced inside a URL's path.
  assert.equal(redactPaths('http://cdn.example/data/face.png and /data/models/x', '/data'), 'http://cdn.example/data/face.png and $LIKENESS_HOME/models/x');
});

test('a task that logs and fails with server paths shows none of them in Task/Detail', async () => {
  let home = '';
  const leaky: ToolRunner = {
    async run(ctx) {
      ctx.log(`loading ${join(home, 'models', 'checkpoints', 'sdxl.safetensors')}`);
      throw new Error(`ENOENT: no such file or directory, open '/opt/likeness/node_modules/onnxruntime-node/bin/x.so' (cache ${join(home, 'cache')})`);
    },
  };
  const tool: ServiceTool = { ...scriptedTool(leaky) };
  const s = await startTestService({ tools: [tool] });
  home = s.home;
  try {
    const { json } = await s.post('/v1/Run/test/scripted', { mode: 'ok' });
    const task = await waitForTerminal(s, json.taskid as string);
    const text = `${String(task.debugoutput)}\n${String(task.debugerror)}`;
    assert.match(text, /\$LIKENESS_HOME\/models\/checkpoints\/sdxl\.safetensors/);
    assert.match(text, /…\/bin\/x\.so/);
    assert.ok(!text.includes(s.home), text);
    assert.ok(!text.includes('/opt/likeness'), text);
  } finally {
    await s.close();
  }
});

test('a validation message about a model that is not installed names no absolute path', async () => {
  const succeed: ToolRunner = { async run() {} };
  let home = '';
  const s = await startTestService({
    tools: defaultTools({ runner: succeed, availability: (id, value) => createAvailability(home, instantIdControlnetLora)(id, value) }),
  });
  home = s.home;
  try {
    const { json } = await s.post('/v1/Run/wiro/instant-id-controlnet-lora', {
      prompt: 'a portrait', inputImageUrl: 'https://images.example/face.png', selectedLoraModel: '622',
    });
    assert.equal(json.result, false);
    const message = (json.errors as { message: string }[]).map((e) => e.message).join(' | ');
    assert.match(message, /\$LIKENESS_HOME\/models\/loras/);
    assert.ok(!message.includes(s.home), message);
  } finally {
    await s.close();
  }
});
