/**
 * Files as this tool meets them. Inputs may be anything a path can name (a FIFO blocks a plain open
 * forever, a directory fails with a raw EISDIR, a device never ends), so they are opened only when they
 * are regular files. Outputs must never destroy what the user has: not the input model or its
 * external data (compared by device and inode, so links and `..` do not fool it), not a device node,
 * not a read-only file; and they are written to a short temporary name beside the target, then renamed.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BortError } from '../errors.js';

/** Longest file name (one path component, in bytes) common file systems accept. */
export const NAME_MAX = 255;

/** A file the job reads, which no output may replace. */
export interface FileIdentity {
  /** Real path (links resolved). */
  path: string;
  dev: number;
  ino: number;
  /** What the file is to the job, for messages: 'the input model', "the input's external data file". */
  role: string;
}

export interface OpenedFile {
  fd: number;
  size: number;
  dev: number;
  ino: number;
}

/** What a non-regular file is, in words. */
export function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'a regular file';
}

/**
 * Opens `file` for reading only if it is a regular file: stat first (opening a FIFO would block until a
 * writer comes), open with O_NONBLOCK in case the file was swapped in between, then check the open
 * descriptor is the regular file that was checked. Errors from stat and open (ENOENT, EACCES...) are
 * thrown as they come, for the caller to word; a non-regular file is `notRegular(kind)`.
 */
export function openRegularFile(file: string, notRegular: (kind: string) => BortError): OpenedFile {
  const st = fs.statSync(file);
  if (!st.isFile()) throw notRegular(kindOf(st));
  const fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  try {
    const now = fs.fstatSync(fd);
    if (!now.isFile()) throw notRegular(kindOf(now));
    if (now.dev !== st.dev || now.ino !== st.ino) {
      throw new BortError(`${file} was replaced while being opened`, 'make sure no other process is writing it, and try again');
    }
    return { fd, size: now.size, dev: now.dev, ino: now.ino };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Reads bytes [offset, offset + length) of an open file into a fresh buffer. */
export function readRange(fd: number, offset: number, length: number, file: string): Buffer {
  let buf: Buffer;
  try {
    buf = Buffer.allocUnsafe(length);
  } catch (e) {
    throw new BortError(`cannot read ${length} bytes of ${file}: ${(e as Error).message}`, 'there is not enough memory for this model; close other programs or use a larger machine');
  }
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, done, Math.min(length - done, 1 << 30), offset + done);
    } catch (e) {
      throw new BortError(`cannot read ${file}: ${(e as Error).message}`, 'check the file and the disk');
    }
    if (n === 0) throw new BortError(`${file} shrank while being read`, 'make sure no other process is writing it');
    done += n;
  }
  return buf;
}

/** The identity of an existing file, or undefined when there is none. */
export function identityOf(file: string, role: string): FileIdentity | undefined {
  try {
    const st = fs.statSync(file);
    return { path: fs.realpathSync(file), dev: st.dev, ino: st.ino, role };
  } catch {
    return undefined;
  }
}

function sameFile(st: fs.Stats, id: FileIdentity): boolean {
  return st.dev === id.dev && st.ino === id.ino;
}

/**
 * Refuses an output path that would lose data or cannot work, before anything is written:
 * - a path ending in a slash (it names a folder; `-o newdir/` is refused, never written as a file
 *   `newdir`), a file name longer than NAME_MAX bytes, a folder that does not exist;
 * - an existing file that is one of `protect` (the input model, its external data), however it is
 *   reached (same device and inode: links, `..`, symlinked folders);
 * - an existing path that is not a regular file (a directory, a FIFO, a device node such as
 *   /dev/null: renaming over it would replace the node), or a read-only file (no write bit, or not
 *   writable by this user: renaming would replace a file the user protected).
 * `given` is the path as the user wrote it (messages show it).
 */
export function checkOutputPath(given: string, protect: readonly FileIdentity[] = []): void {
  if (/[\\/]$/.test(given)) {
    throw new BortError(`cannot write ${given}: the path ends with a slash, so it names a folder`, `give a file name, e.g. ${given}model.onnx`);
  }
  const target = path.resolve(given);
  const name = path.basename(target);
  const nameBytes = Buffer.byteLength(name, 'utf8');
  if (nameBytes > NAME_MAX) {
    throw new BortError(`cannot write ${given}: its file name is ${nameBytes} bytes long, more than the ${NAME_MAX} file systems allow`, 'choose a shorter output name');
  }
  const dir = path.dirname(target);
  let dirStat: fs.Stats;
  try {
    dirStat = fs.statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new BortError(`cannot write ${given}: folder ${dir} does not exist`, 'create the folder or choose another output path');
    throw new BortError(`cannot write ${given}: ${(e as Error).message}`, 'choose another output path');
  }
  if (!dirStat.isDirectory()) throw new BortError(`cannot write ${given}: ${dir} is not a folder`, 'choose another output path');
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return; // a new file (or a dangling link, which the rename replaces)
    throw new BortError(`cannot write ${given}: ${(e as Error).message}`, 'choose another output path');
  }
  for (const id of protect) {
    if (sameFile(st, id)) {
      throw new BortError(`cannot write ${given}: it is ${id.role} (${id.path})`, 'choose a different output path; bort-compress never replaces what it reads');
    }
  }
  if (!st.isFile()) {
    throw new BortError(`cannot write ${given}: it is not a regular file (${kindOf(st)})`, 'give the path of a file to create or replace');
  }
  if ((st.mode & 0o222) === 0) {
    throw new BortError(`cannot write ${given}: it is read-only`, 'choose another output path, or make the file writable first if you mean to replace it');
  }
  try {
    fs.accessSync(target, fs.constants.W_OK);
  } catch {
    throw new BortError(`cannot write ${given}: permission denied (you cannot write this file)`, 'choose another output path');
  }
}

/** A short, unguessable temporary name in the target's folder (the target's name may be long). */
export function tempPathBeside(target: string): string {
  return path.join(path.dirname(target), `.bort-${crypto.randomBytes(6).toString('hex')}.tmp`);
}

/** Removes a file if it is there; never throws (clean-up must not hide the error that caused it). */
export function removeQuietly(file: string | undefined): void {
  if (!file) return;
  try {
    fs.rmSync(file, { force: true });
  } catch {
    // nothing to do: the original error matters more
  }
}

/** A write failure as a one-line BortError. */
export function writeError(e: unknown, given: string): BortError {
  if (e instanceof BortError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  const dir = path.dirname(path.resolve(given));
  switch (code) {
    case 'ENOENT': return new BortError(`cannot write ${given}: folder ${dir} does not exist`, 'create the folder or choose another output path');
    case 'EACCES': case 'EPERM': return new BortError(`cannot write ${given}: permission denied`, 'choose an output path you can write to');
    case 'EROFS': return new BortError(`cannot write ${given}: the file system is read-only`, 'choose an output path you can write to');
    case 'EISDIR': return new BortError(`cannot write ${given}: it is a directory`, 'give a file name for the output, e.g. -o out/model.onnx');
    case 'ENOSPC': case 'EDQUOT': return new BortError(`cannot write ${given}: the disk is full`, 'free some space or choose another output path');
    case 'ENAMETOOLONG': return new BortError(`cannot write ${given}: the path is too long`, 'choose a shorter output path');
    case 'EFBIG': return new BortError(`cannot write ${given}: the file is too large for this file system`, 'choose another output path');
    default: return new BortError(`cannot write ${given}: ${(e as Error).message ?? String(e)}`, 'choose another output path');
  }
}
