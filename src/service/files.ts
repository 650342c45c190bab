// File storage: the bytes of uploaded inputs and task outputs. One interface (local disk now; object
// storage in cluster mode later). Paths are always of our making — never a client's file name.
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createReadStream, type ReadStream } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';

export interface FileStorage {
  /** Writes bytes atomically at `relPath`; returns their size. */
  put(relPath: string, bytes: Uint8Array): Promise<number>;
  /** Moves a staged file into place (same storage), atomically. */
  move(fromRel: string, toRel: string): Promise<void>;
  read(relPath: string): ReadStream;
  size(relPath: string): Promise<number | undefined>;
  remove(relPath: string): Promise<void>;
  /** Absolute path on local disk (the engine writes outputs there directly). */
  localPath(relPath: string): string;
}

export class LocalFileStorage implements FileStorage {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  localPath(relPath: string): string {
    const abs = resolve(this.root, relPath);
    if (!abs.startsWith(this.root + sep)) throw new Error(`refusing a path outside the file store: ${relPath}`);
    return abs;
  }

  async put(relPath: string, bytes: Uint8Array): Promise<number> {
    const abs = this.localPath(relPath);
    await mkdir(dirname(abs), { recursive: true });
    const tmp = `${abs}.tmp-${process.pid}`;
    await writeFile(tmp, bytes);
    await rename(tmp, abs);
    return bytes.byteLength;
  }

  async move(fromRel: string, toRel: string): Promise<void> {
    const to = this.localPath(toRel);
    await mkdir(dirname(to), { recursive: true });
    await rename(this.localPath(fromRel), to);
  }

  read(relPath: string): ReadStream {
    return createReadStream(this.localPath(relPath));
  }

  async size(relPath: string): Promise<number | undefined> {
    try {
      return (await stat(this.localPath(relPath))).size;
    } catch {
      return undefined;
    }
  }

  async remove(relPath: string): Promise<void> {
    await rm(this.localPath(relPath), { force: true, recursive: true });
  }
}

export function taskDir(taskId: number): string {
  return join('tasks', String(taskId));
}
