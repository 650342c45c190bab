// One server per LIKENESS_HOME: two servers on one data folder would each recover the other's running
// tasks, run queued work twice and ignore each other's Kills. The lock is a file created exclusively
// (O_EXCL) holding the owner's pid and address; a lock whose pid is no longer alive is stale and taken over.
import { openSync, writeSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface LockInfo {
  pid: number;
  address: string | null;
  startedAt: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readLock(path: string): LockInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockInfo>;
    return typeof info.pid === 'number' ? { pid: info.pid, address: info.address ?? null, startedAt: info.startedAt ?? 0 } : undefined;
  } catch {
    return undefined; // unreadable or half-written: treated as stale below only if it stays so
  }
}

export class HomeLockedError extends Error {
  constructor(readonly home: string, readonly owner: LockInfo) {
    super(`Another Likeness server (pid ${owner.pid}${owner.address ? `, listening on ${owner.address}` : ', starting'}) is using this data folder ` +
      `(LIKENESS_HOME=${home}). Stop it first, or start this one with another --home.`);
    this.name = 'HomeLockedError';
  }
}

export class HomeLock {
  private held = true;

  private constructor(readonly path: string, private info: LockInfo) {}

  /** Takes the lock on `home` or throws HomeLockedError naming the live owner. */
  static acquire(home: string): HomeLock {
    const path = join(home, 'likeness.lock');
    const info: LockInfo = { pid: process.pid, address: null, startedAt: Date.now() };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        writeSync(fd, JSON.stringify(info));
        closeSync(fd);
        return new HomeLock(path, info);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = readLock(path);
      if (owner && alive(owner.pid)) throw new HomeLockedError(home, owner);
      rmSync(path, { force: true }); // the owner died without releasing it (crash, kill -9)
    }
    throw new Error(`could not take the lock ${path}: another server keeps creating it`);
  }

  /** Records the address the server listens on, for the message a second server prints. */
  setAddress(address: string): void {
    if (!this.held) return;
    this.info = { ...this.info, address };
    writeFileSync(this.path, JSON.stringify(this.info), { mode: 0o600 });
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    const owner = readLock(this.path);
    if (owner && owner.pid === this.info.pid && owner.startedAt === this.info.startedAt) rmSync(this.path, { force: true });
  }
}
