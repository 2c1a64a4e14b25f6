/**
 * A node's cgroup scope: the one subtree of the host a node agent owns when
 * several share a kernel (tests, demos: `tracefeed up --nodes 3`). The kernel
 * programs collect only tasks and sockets in it (tf_probe_config.scope_*,
 * bpf/control.h), and the node's cgroup signals read only cgroups in it.
 */
import { statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { cgroup2Root } from './cgroup-resolver.js';

export interface CgroupScope {
  /** Path relative to the cgroup v2 root, starting with "/" (never "/" itself). */
  path: string;
  /** cgroup v2 id (the directory's inode). */
  id: bigint;
  /** Depth below the root: "/a" is 1, "/a/b" 2. */
  level: number;
}

/**
 * Resolves a scope given as a path relative to the cgroup v2 root ("/tracefeed-node-1")
 * or as an absolute path under it ("/sys/fs/cgroup/unified/tracefeed-node-1").
 * The root itself means the whole host: undefined. A scope that is not an
 * existing cgroup is refused, naming the path.
 */
export function resolveCgroupScope(
  given: string,
  root: string | undefined = cgroup2Root(),
): CgroupScope | undefined {
  if (!root) throw new ConfigError('no cgroup v2 mount: a cgroup scope needs one', 'cgroup_scope');
  const rel = given.startsWith(root + '/') || given === root ? relative(root, given) : given;
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw new ConfigError(`cgroup scope "${given}" leaves the cgroup v2 root`, 'cgroup_scope');
  if (parts.length === 0) return undefined;
  if (isAbsolute(given) && !given.startsWith(root + '/') && given.startsWith('/sys/fs/cgroup'))
    throw new ConfigError(
      `cgroup scope "${given}" is not under the cgroup v2 mount ${root}`,
      'cgroup_scope',
    );
  const path = `/${parts.join('/')}`;
  let st;
  try {
    st = statSync(join(root, path), { bigint: true });
  } catch {
    throw new ConfigError(
      `cgroup scope "${given}": ${join(root, path)} does not exist (make the cgroup first)`,
      'cgroup_scope',
    );
  }
  if (!st.isDirectory())
    throw new ConfigError(`cgroup scope "${given}" is not a cgroup directory`, 'cgroup_scope');
  return { path, id: st.ino, level: parts.length };
}

/** Whether a cgroup path (relative to the v2 root) lies in the scope; everything does without one. */
export function inCgroupScope(path: string, scope: CgroupScope | undefined): boolean {
  if (!scope) return true;
  return path === scope.path || path.startsWith(`${scope.path}/`);
}
