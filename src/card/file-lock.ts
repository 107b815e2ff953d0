// Small file helpers for the software card: an advisory lock file and atomic replacement.
//
// The lock is a file `<path>.lock` created with O_EXCL and holding the owner's pid. A lock whose
// owner is no longer running (same host) is broken. Breaking is checked (the lock moved aside must be
// the stale one), but two processes racing to break the same stale lock can in a very narrow window
// both proceed; the card file is still never torn (every write is a rename), and the window only
// opens after a process died holding the lock. Meant for a local filesystem, not NFS.

import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class FileLockTimeoutError extends Error {
  override name = 'FileLockTimeoutError';
}

/** Runs `fn` holding `<path>.lock`; waits up to `timeoutMs` for another holder. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (await breakIfStale(lockPath)) continue;
      if (Date.now() > deadline)
        throw new FileLockTimeoutError(
          `${path} is in use by another process (lock file ${lockPath}); try again, or remove the lock file if no jpki process is running`,
        );
      await sleep(delay + Math.random() * delay);
      delay = Math.min(delay * 2, 50);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

/** Removes the lock if its owner is not running (or it was left empty for over 5 s). */
async function breakIfStale(lockPath: string): Promise<boolean> {
  let text: string;
  let seen: { ino: number; mtimeMs: number };
  try {
    seen = await stat(lockPath);
    text = await readFile(lockPath, 'utf8');
  } catch {
    return true; // gone in the meantime: try again
  }
  const pid = Number.parseInt(text.trim(), 10);
  let stale: boolean;
  if (!Number.isInteger(pid) || pid <= 0) stale = Date.now() - seen.mtimeMs > 5_000;
  else if (pid === process.pid) stale = false;
  else {
    try {
      process.kill(pid, 0);
      stale = false;
    } catch (e) {
      stale = (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  if (!stale) return false;
  // Move it aside and check that what moved is the stale lock we looked at (same inode): if another
  // breaker got there first and a fresh lock took its place, put that one back.
  const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(lockPath, aside);
  } catch {
    return true;
  }
  try {
    if ((await stat(aside)).ino !== seen.ino) {
      await link(aside, lockPath).catch(() => undefined);
    }
  } finally {
    await unlink(aside).catch(() => undefined);
  }
  return true;
}

/** Writes `data` to a temporary file (mode 0600), fsyncs it and renames it over `path`. */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeNew(tmp, data);
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await syncDir(dirname(path));
}

/** Like writeFileAtomic, but fails with EEXIST if `path` exists (link() is atomic). */
export async function createFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeNew(tmp, data);
  try {
    await link(tmp, path);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  await syncDir(dirname(path));
}

async function writeNew(path: string, data: string | Buffer): Promise<void> {
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // not supported on every platform; the rename itself is atomic
  }
}
