// The load generator bench/api.ts forks: N keep-alive connections, each sending freshly signed POSTs back
// to back (a closed loop) for a warm-up and then a measured period; reports the count and latencies over IPC.
// Run by bench/api.ts; standalone: node --import tsx bench/api-load.ts '<LoadJob as JSON>'.
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { NonceSource, signature } from '../src/client/signing.js';

export interface LoadJob {
  url: string;
  path: string;
  apiKey: string;
  apiSecret: string;
  connections: number;
  warmupSeconds: number;
  seconds: number;
  /** The JSON body; `{{taskid}}` in a string value is replaced by a task id drawn from taskIds. */
  body: Record<string, unknown>;
  taskIds?: [number, number];
  /**
   * agent: node's http client with a keep-alive Agent. raw: pre-formatted HTTP/1.1 over plain sockets
   * (as autocannon does), which leaves more of a small machine's CPU to the service.
   */
  client: 'agent' | 'raw';
  /**
   * Paced (open-loop) load: this many requests per second in all, spread over the connections, each
   * latency counted from its scheduled start (so a stalled server cannot hide its queue). Absent: each
   * connection sends its next request as soon as the last is answered (saturation).
   */
  rate?: number;
}

type Send = (body: string, headers: Record<string, string>) => Promise<{ ok: boolean; text: string }>;

export interface LoadResult {
  requests: number;
  failures: number;
  firstFailure?: string;
  seconds: number;
  /** Latency percentiles of the measured period, in milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function bodyFor(job: LoadJob): string {
  if (!job.taskIds) return JSON.stringify(job.body);
  const [lo, hi] = job.taskIds;
  const id = String(lo + Math.floor(Math.random() * (hi - lo + 1)));
  return JSON.stringify(job.body).replaceAll('{{taskid}}', id);
}

/** One keep-alive connection sending pre-formatted requests and reading Content-Length-framed answers. */
async function rawSender(target: URL, path: string): Promise<{ send: Send; close(): void }> {
  const socket = net.connect(Number(target.port), target.hostname);
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffer: Buffer = Buffer.alloc(0);
  let pending: { resolve(r: { ok: boolean; text: string }): void; reject(e: Error): void } | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
    const head = buffer.indexOf('\r\n\r\n');
    if (head < 0 || !pending) return;
    const headers = buffer.toString('latin1', 0, head);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
    if (!length) return pending.reject(new Error(`no content-length in ${headers.slice(0, 200)}`));
    const total = head + 4 + Number(length[1]);
    if (buffer.length < total) return;
    const text = buffer.toString('utf8', head + 4, total);
    buffer = buffer.subarray(total);
    const status = Number(headers.slice(9, 12));
    const done = pending;
    pending = undefined;
    done.resolve({ ok: status === 200 && text.includes('"result":true'), text: `HTTP ${status}: ${text.slice(0, 300)}` });
  });
  socket.on('error', (err) => pending?.reject(err));
  socket.on('close', () => pending?.reject(new Error('connection closed')));
  const host = `${target.hostname}:${target.port}`;
  return {
    send: (body, headers) =>
      new Promise((resolve, reject) => {
        pending = { resolve, reject };
        let head = `POST ${path} HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
        for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
        socket.write(`${head}\r\n${body}`);
      }),
    close: () => socket.destroy(),
  };
}

export async function generateLoad(job: LoadJob): Promise<LoadResult> {
  const target = new URL(job.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
  const nonces = new NonceSource();
  const latencies: number[] = [];
  let requests = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  const start = performance.now();
  const measureFrom = start + job.warmupSeconds * 1000;
  const end = measureFrom + job.seconds * 1000;

  const signed = () => {
    const nonce = nonces.next();
    return { 'x-api-key': job.apiKey, 'x-nonce': nonce, 'x-signature': signature(job.apiKey, job.apiSecret, nonce) };
  };
  const agentSend: Send = (body, headers) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent, host: target.hostname, port: target.port, path: job.path, method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ ok: res.statusCode === 200 && text.includes('"result":true'), text: `HTTP ${res.statusCode}: ${text.slice(0, 300)}` });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const interval = job.rate ? (job.connections * 1000) / job.rate : 0;
  const connection = async (index: number) => {
    const raw = job.client === 'raw' ? await rawSender(target, job.path) : undefined;
    const send = raw?.send ?? agentSend;
    let next = start + (index * interval) / job.connections;
    for (;;) {
      if (interval) {
        const ahead = next - performance.now();
        if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
      }
      const t0 = interval ? next : performance.now();
      next += interval;
      if (t0 >= end) break;
      const r = await send(bodyFor(job), signed()).catch((err: unknown) => ({ ok: false, text: String(err) }));
      const t1 = performance.now();
      if (t0 < measureFrom) continue;
      requests++;
      latencies.push(t1 - t0);
      if (!r.ok) {
        failures++;
        firstFailure ??= r.text;
      }
    }
    raw?.close();
  };
  await Promise.all(Array.from({ length: job.connections }, (_, i) => connection(i)));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests, failures, firstFailure, seconds: job.seconds,
    p50: percentile(latencies, 0.5), p90: percentile(latencies, 0.9), p99: percentile(latencies, 0.99), max: latencies.at(-1) ?? NaN,
  };
}

// Forked by bench/api.ts: the job arrives as argv[2], the result leaves over IPC.
if (import.meta.url === `file://${process.argv[1]}`) {
  const job = JSON.parse(process.argv[2] ?? '{}') as LoadJob;
  const result = await generateLoad(job);
  if (process.send) await new Promise<void>((resolve) => process.send!(result, () => resolve()));
  else console.log(JSON.stringify(result));
}
