// Local HTTP servers on 127.0.0.1 and a fake DNS for the net tests: nothing here reaches beyond loopback.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { deflateSync } from 'node:zlib';

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface TestServer {
  port: number;
  /** http://127.0.0.1:PORT/path */
  url(path: string): string;
  /** The same server under another hostname (resolve it with fakeDns). */
  urlAs(host: string, path: string): string;
  /** Paths requested so far, in order. */
  hits: string[];
  requests: { method: string; path: string; headers: http.IncomingHttpHeaders; body: Buffer }[];
  close(): Promise<void>;
}

/** Starts a server on 127.0.0.1 routing by exact path; unknown paths answer 404. */
export async function startServer(routes: Record<string, Handler>): Promise<TestServer> {
  const hits: string[] = [];
  const requests: TestServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const body = Buffer.concat(chunks);
      hits.push(path);
      requests.push({ method: req.method ?? '', path, headers: req.headers, body });
      const route = routes[path.split('?')[0]];
      if (route) route(req, res, body);
      else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    });
  });
  // A handler that writes forever sees EPIPE/ECONNRESET once the client gives up: expected here.
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    urlAs: (host, path) => `http://${host}:${port}${path}`,
    hits,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on 127.0.0.1 with nothing listening (connections are refused). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A resolver answering from a table; any other name fails as ENOTFOUND, as real DNS would. */
export function fakeDns(table: Record<string, string[]>): ((host: string) => Promise<LookupAddress[]>) & { calls: string[] } {
  const calls: string[] = [];
  const resolve = async (host: string): Promise<LookupAddress[]> => {
    calls.push(host);
    const answers = table[host];
    if (answers === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return answers.map((address) => ({ address, family: isIP(address) }));
  };
  return Object.assign(resolve, { calls });
}

/** Test servers listen on 127.0.0.1; this allowlist lets the fetcher reach them. */
export const LOOPBACK_ALLOW = ['127.0.0.1'];

function crc32(buf: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of buf) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

/**
 * A decompression bomb: a valid PNG of a few hundred bytes whose header declares width × height
 * RGB pixels (30000 × 30000 = 2.7 GB decoded). Only the first rows carry data.
 */
export function bombPng(width = 30000, height = 30000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const rows = deflateSync(Buffer.alloc((width * 3 + 1) * 4));
  return Buffer.concat([
    Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', rows),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
