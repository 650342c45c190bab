// likeness keys create|list|revoke — API keys of a project (signature projects get key + secret).
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openStore } from '../service/app.js';
import type { AuthMode } from '../service/store/types.js';
import { fail } from './args.js';

const HELP = `usage:
  likeness keys create [--project NAME] [--auth signature|apikey] [--json]
      prints a new key (and secret); makes the project if it does not exist (default: "default")
  likeness keys list [--project NAME] [--show-secrets] [--json]
  likeness keys revoke API_KEY

Keys live in $LIKENESS_HOME/likeness.db (default ./data). A project's auth mode (signature, or
API-key only) is chosen when it is made and cannot change later, as on Wiro.`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      project: { type: 'string', default: 'default' },
      auth: { type: 'string', default: 'signature' },
      json: { type: 'boolean' },
      'show-secrets': { type: 'boolean' },
      home: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [action, arg] = positionals;
  if (values.help || !action) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  const store = openStore(loadConfig(values.home ? { home: values.home } : {}));
  try {
    if (action === 'create') {
      if (values.auth !== 'signature' && values.auth !== 'apikey') return fail('--auth must be "signature" or "apikey"');
      const project = (await store.findProject(values.project!)) ?? (await store.createProject(values.project!, values.auth as AuthMode));
      if (project.auth !== values.auth && args.includes('--auth')) {
        return fail(`project "${project.name}" already exists with ${project.auth} authentication; its mode cannot change`);
      }
      const key = await store.createKey(project.id);
      if (values.json) console.log(JSON.stringify(key.apiSecret === null ? { apiKey: key.apiKey } : key));
      else {
        console.log(`project: ${project.name} (${project.auth})`);
        console.log(`apiKey:    ${key.apiKey}`);
        if (key.apiSecret) console.log(`apiSecret: ${key.apiSecret}`);
      }
      return 0;
    }
    if (action === 'list') {
      const project = values.project === 'default' && !args.includes('--project') ? undefined : await store.findProject(values.project!);
      if (args.includes('--project') && !project) return fail(`no project named "${values.project}"`);
      const keys = await store.listKeys(project?.id);
      const webhookSecrets = new Map<number, string>();
      if (values['show-secrets']) for (const k of keys) if (!webhookSecrets.has(k.projectId)) webhookSecrets.set(k.projectId, await store.webhookSecret(k.projectId));
      const rows = keys.map((k) => ({
        project: k.projectName,
        auth: k.auth,
        apiKey: k.apiKey,
        ...(values['show-secrets'] && k.apiSecret ? { apiSecret: k.apiSecret } : {}),
        // The project's callback signing secret (Standard Webhooks webhook-signature).
        ...(values['show-secrets'] ? { webhookSecret: webhookSecrets.get(k.projectId) } : {}),
        created: new Date(k.createdAt).toISOString(),
        revoked: k.revokedAt ? new Date(k.revokedAt).toISOString() : null,
      }));
      if (values.json) console.log(JSON.stringify(rows));
      else if (rows.length === 0) console.log('no keys yet: `likeness keys create`');
      else for (const r of rows) console.log(Object.entries(r).map(([k, v]) => `${k}=${v ?? '-'}`).join('  '));
      return 0;
    }
    if (action === 'revoke') {
      if (!arg) return fail('usage: likeness keys revoke API_KEY');
      if (!(await store.revokeKey(arg))) return fail('no such active key');
      console.log('revoked');
      return 0;
    }
    return fail(`unknown keys action "${action}"\n${HELP}`);
  } finally {
    await store.close();
  }
}
