/**
 * What a cgroup path says about the workload in it: the container id (docker,
 * containerd, cri-o, podman) and the Kubernetes pod uid. Pure string work, so
 * the cluster side reads it without the node's cgroup file system walk.
 */

export interface CgroupInfo {
  /** Path relative to the cgroup v2 root, starting with "/". */
  path: string;
  /** Container id when the path names one (docker, containerd, cri-o, podman). */
  containerId: string | undefined;
  /** Kubernetes pod uid when the path names one. */
  podUid: string | undefined;
}

const CONTAINER_PATTERNS: RegExp[] = [
  /(?:docker|cri-containerd|crio|libpod|containerd)-([0-9a-f]{64})\.scope/,
  /\/(?:docker|containerd|crio|libpod)\/([0-9a-f]{64})(?:\/|$)/,
  /\/kubepods[^/]*\/(?:[^/]+\/)*?([0-9a-f]{64})(?:\/|$)/,
];
const POD_PATTERN = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/;

export function parseCgroupPath(path: string): CgroupInfo {
  let containerId: string | undefined;
  for (const re of CONTAINER_PATTERNS) {
    const m = re.exec(path);
    if (m?.[1]) {
      containerId = m[1];
      break;
    }
  }
  const pod = POD_PATTERN.exec(path)?.[1]?.replace(/_/g, '-');
  return { path, containerId, podUid: pod };
}
