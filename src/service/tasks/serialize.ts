// A task as Wiro's Task/Detail, Kill and Cancel responses show it (wiro-tool-seed.md): every number a
// string, unix-second timestamps as strings ("0" when unset), outputs with their public URLs.
import type { FileRecord, TaskRecord } from '../store/types.js';
import { TIME_FIELDS } from './statuses.js';

export interface ToolFacts {
  /** Wiro's numeric model id for the tool, as a string. */
  modelid: string;
  owner: string;
  slug: string;
  description: string;
  categories: string[];
}

export interface WiroOutput {
  id: string;
  name: string;
  contenttype: string;
  parentid: string;
  uuid: string;
  size: string;
  addedtime: string;
  modifiedtime: string;
  accesskey: string;
  foldercount: string;
  filecount: string;
  ispublic: number;
  expiretime: null;
  url: string;
}

export type WiroTask = Record<string, unknown> & { id: string; status: string; outputs: WiroOutput[] };

const seconds = (ms: number | null | undefined): string => (ms ? String(Math.floor(ms / 1000)) : '0');

export function fileUrl(publicUrl: string, file: Pick<FileRecord, 'accessKey' | 'name'>): string {
  return `${publicUrl}/v1/File/${file.accessKey}/${encodeURIComponent(file.name)}`;
}

export function serializeOutput(task: TaskRecord, f: FileRecord, publicUrl: string): WiroOutput {
  return {
    id: f.id,
    name: f.name,
    contenttype: f.contentType,
    parentid: task.folderId,
    uuid: task.uuid,
    size: String(f.size),
    addedtime: seconds(f.addedAt),
    modifiedtime: seconds(f.modifiedAt),
    accesskey: f.accessKey,
    foldercount: '0',
    filecount: '0',
    ispublic: 0,
    expiretime: null,
    url: fileUrl(publicUrl, f),
  };
}

/** Seconds the task spent on a worker: from acceptance to the end of the run (or now, while running). */
export function elapsedSeconds(task: TaskRecord, now: number): number {
  const t = task.times;
  const start = t.accepttime;
  if (!start) return 0;
  const end = t.endtime ?? t.canceltime ?? t.postprocessendtime ?? (task.status === 'task_error' ? t.preprocessendtime ?? start : now);
  return Math.max(0, (end - start) / 1000);
}

/** Failed runs are not billed (wiro-api.md §a.4); successful and killed ones are, at the tool's cps. */
export function totalCost(task: TaskRecord, elapsed: number): string {
  const failed = task.status === 'task_error' || (task.status === 'task_postprocess_end' && task.pexit !== '0');
  if (failed) return '0';
  return (elapsed * Number(task.cps)).toFixed(12);
}

export function serializeTask(task: TaskRecord, outputs: FileRecord[], tool: ToolFacts, publicUrl: string, now = Date.now()): WiroTask {
  const elapsed = elapsedSeconds(task, now);
  const out = outputs.map((f) => serializeOutput(task, f, publicUrl));
  const times = Object.fromEntries(TIME_FIELDS.map((f) => [f, seconds(task.times[f])]));
  const p = task.progress;
  return {
    id: String(task.id),
    uuid: task.uuid,
    name: '',
    socketaccesstoken: task.socketToken,
    parameters: task.parameters,
    debugoutput: task.debugoutput,
    debugerror: task.debugerror,
    starttime: times.starttime,
    endtime: times.endtime,
    elapsedseconds: elapsed.toFixed(4),
    status: task.status,
    cps: task.cps,
    totalcost: totalCost(task, elapsed),
    guestid: null,
    projectid: String(task.projectId),
    modelid: tool.modelid,
    description: '',
    basemodelid: '0',
    runtype: 'model',
    modelfolderid: '',
    modelfileid: '',
    callbackurl: task.callbackUrl,
    // Our extension: how the callback delivery went (null until it was tried).
    callbackdelivery: task.callback,
    marketplaceid: null,
    createtime: times.createtime,
    canceltime: times.canceltime,
    assigntime: times.assigntime,
    accepttime: times.accepttime,
    preprocessstarttime: times.preprocessstarttime,
    preprocessendtime: times.preprocessendtime,
    postprocessstarttime: times.postprocessstarttime,
    postprocessendtime: times.postprocessendtime,
    pexit: task.pexit ?? '',
    categories: JSON.stringify(tool.categories),
    modeldescription: tool.description,
    modelslugowner: tool.owner,
    modelslugproject: tool.slug,
    // Our extension: the denoising loop's latest progress, as the WebSocket's progressGenerate carries it.
    progress: p ? progressMessage(p) : null,
    outputs: out,
    size: String(outputs.reduce((s, f) => s + f.size, 0)),
  };
}

function duration(s: number): string {
  return `${Math.max(0, Math.round(s))}s`;
}

/** Wiro's progressGenerate message (every value a string). */
export function progressMessage(p: NonNullable<TaskRecord['progress']>): Record<string, string> {
  const speed = p.elapsed > 0 ? p.stepCurrent / p.elapsed : 0;
  const remaining = speed > 0 ? (p.stepTotal - p.stepCurrent) / speed : 0;
  return {
    type: 'progressGenerate',
    task: p.task ?? 'Generate',
    percentage: String(p.stepTotal > 0 ? Math.floor((100 * p.stepCurrent) / p.stepTotal) : 0),
    stepCurrent: String(p.stepCurrent),
    stepTotal: String(p.stepTotal),
    speed: speed >= 1 || speed === 0 ? speed.toFixed(2) : (1 / speed).toFixed(2),
    speedType: speed >= 1 || speed === 0 ? 'it/s' : 's/it',
    elapsedTime: duration(p.elapsed),
    remainingTime: duration(remaining),
  };
}
