// likeness models private add|ls — a project's private checkpoints and LoRAs (selectedModelPrivate,
// selectedLoraModelPrivate). Only the operator adds them; each belongs to one project (tools/catalog.ts).
import { resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { openStore } from '../service/app.js';
import type { Project, TaskStore } from '../service/store/types.js';
import { addPrivateModel, listPrivateModels, oldLayoutModels, PrivateModelError, type PrivateKind, type PrivateModel } from '../tools/private-models.js';
import { fail, fileSize, parseVerb } from './args.js';

export const PRIVATE_HELP = `usage:
  likeness models private add --project NAME|ID FILE [--kind lora|checkpoint] [--id ID] [--replace] [--json]
  likeness models private ls [--project NAME|ID] [--json]
  (both take --home DIR; default $LIKENESS_HOME or ./data)

add copies FILE into the project's own folder, where only that project's Runs find it:
  models/loras/private/<project id>/<ID>.safetensors         a LoRA (selectedLoraModelPrivate: ID)
  models/checkpoints/private/<project id>/<ID>.safetensors   an SDXL checkpoint (selectedModelPrivate: ID),
  models/checkpoints/private/<project id>/<ID>/              or its diffusers folder (FILE a folder with model_index.json)
The kind is read from the file's tensors unless --kind says it. A LoRA must fit SDXL base's layers; a
checkpoint must be an SDXL single file or diffusers folder. ID defaults to FILE's name without its
extension (letters, digits, '.', '_', '-'; not starting with '.'). A model of that ID is kept unless
--replace. The copy is made under a temporary name and renamed, so a Run never sees half a file.
ls lists each project's private models (one project with --project).`;

/** A project by name, else by its numeric id. */
async function findProjectRef(store: TaskStore, ref: string): Promise<Project | undefined> {
  const byName = await store.findProject(ref);
  if (byName) return byName;
  if (!/^\d+$/.test(ref)) return undefined;
  return (await store.listProjects()).find((p) => p.id === Number(ref));
}

const KIND_WORD: Record<PrivateKind, string> = { lora: 'LoRA', checkpoint: 'checkpoint' };

const row = (p: Project, m: PrivateModel) => ({ project: p.name, projectId: p.id, kind: m.kind, id: m.id, path: m.path, bytes: m.bytes });

export async function runPrivate(args: string[]): Promise<number> {
  const parsed = parseVerb(args, {
    project: { type: 'string' },
    kind: { type: 'string' },
    id: { type: 'string' },
    replace: { type: 'boolean' },
    json: { type: 'boolean' },
    home: { type: 'string' },
  }, PRIVATE_HELP);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals, action } = parsed;
  const rest = positionals.slice(1);
  if (action !== 'add' && action !== 'ls') return fail(`unknown command "models private ${action}"\n\n${PRIVATE_HELP}`);
  if (action === 'add') {
    if (!values.project) return fail('models private add needs --project NAME|ID: a private model belongs to one project');
    if (rest.length !== 1) return fail(`models private add takes one FILE (got ${rest.length})\n\n${PRIVATE_HELP}`);
    if (values.kind !== undefined && values.kind !== 'lora' && values.kind !== 'checkpoint') return fail(`--kind ${values.kind}: use lora or checkpoint`);
  } else {
    if (rest.length > 0) return fail(`models private ls takes no FILE\n\n${PRIVATE_HELP}`);
    for (const flag of ['kind', 'id', 'replace'] as const) if (values[flag] !== undefined) return fail(`--${flag} goes with models private add`);
  }
  const home = loadConfig(values.home ? { home: values.home } : {}).home;
  const store = openStore({ home });
  try {
    const project = values.project === undefined ? undefined : await findProjectRef(store, values.project);
    if (values.project !== undefined && !project) {
      return fail(`no project named or numbered "${values.project}" (\`likeness keys list\` shows the projects)`);
    }
    if (action === 'add') {
      const added = await addPrivateModel(home, project!.id, resolve(rest[0]!), {
        ...(values.kind ? { kind: values.kind as PrivateKind } : {}),
        ...(values.id !== undefined ? { id: values.id } : {}),
        replace: values.replace === true,
      });
      if (values.json) console.log(JSON.stringify({ ...row(project!, added), replaced: added.replaced }));
      else {
        console.log(`${added.replaced ? 'replaced' : 'added'} private ${KIND_WORD[added.kind]} ${added.id} of project "${project!.name}" (id ${project!.id}): ${added.path} (${fileSize(added.bytes)})`);
        console.log(`  its Runs select it with "${added.kind === 'lora' ? 'selectedLoraModelPrivate' : 'selectedModelPrivate'}": "${added.id}"`);
      }
      return 0;
    }
    const projects = project ? [project] : await store.listProjects();
    const rows = projects.flatMap((p) => listPrivateModels(home, p.id).map((m) => row(p, m)));
    const old = oldLayoutModels(home);
    if (values.json) console.log(JSON.stringify(rows));
    else {
      if (rows.length === 0) console.log(project ? `project "${project.name}" has no private models` : 'no private models');
      for (const r of rows) console.log(`${r.project}\t${r.projectId}\t${r.kind}\t${r.id}\t${fileSize(r.bytes)}\t${r.path}`);
      if (old.length > 0) console.log(`not used (the old shared layout; give each to its project with \`models private add\`): ${old.join(', ')}`);
    }
    return 0;
  } catch (err) {
    if (err instanceof PrivateModelError) return fail(err.message);
    throw err;
  } finally {
    await store.close();
  }
}
