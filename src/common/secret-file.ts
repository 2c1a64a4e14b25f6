/**
 * Files that hold a secret of this installation (the API token, the feedback
 * signing key): read only when they are regular files of this user that no
 * other user can read, and created once, atomically, with mode 0600.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from './errors.js';

/** A secret file that cannot be used; the message names the file and the fix. */
export class SecretFileError extends ConfigError {
  constructor(
    message: string,
    readonly file: string,
    hint: string,
    cause?: unknown,
  ) {
    super(message, 'secret', { hint, ...(cause !== undefined ? { cause } : {}) });
  }
}

/**
 * Whether a secret file is there: 'missing' (ENOENT, or a directory on its path is
 * missing), 'present', or 'denied' when this user may not even look (a directory on its
 * path it cannot enter): a secret of another user is not the same as no secret.
 */
export function secretFileState(file: string): 'missing' | 'present' | 'denied' {
  try {
    statSync(file);
    return 'present';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return 'denied';
    return 'missing';
  }
}

/**
 * Reads a secret file after checking it: a regular file, owned by this user,
 * not readable by group or others. `what` names it in messages ("the API
 * token"); `accessHint` is the fix offered on EACCES. ENOENT is thrown as is.
 */
export function readSecretFile(file: string, what: string, accessHint: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES')
      throw new SecretFileError(
        `cannot read ${what} ${file}: permission denied`,
        file,
        accessHint,
        err,
      );
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new SecretFileError(`${what} ${file} is not a regular file`, file, `remove it`);
    if ((st.mode & 0o077) !== 0)
      throw new SecretFileError(
        `${what} ${file} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); refusing to use it`,
        file,
        `chmod 600 ${file} (and rotate it: rm ${file}, restart tracefeed)`,
      );
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid)
      throw new SecretFileError(
        `${what} ${file} belongs to uid ${st.uid}, not to this user (uid ${uid}); refusing to use it`,
        file,
        `chown ${uid} ${file}, or remove it so that a new one is created`,
      );
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates `file` with `content` and `mode` unless it exists: written under a
 * temporary name, then hard-linked into place, so a reader never sees a
 * partial file and, of two creators, the first one wins (the other's content
 * is discarded). Its directory is created with mode 0700.
 */
export function createFileOnce(file: string, content: string, mode = 0o600): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode, flag: 'wx' });
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
}
