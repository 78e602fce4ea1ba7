/**
 * Whether a process with this pid runs on this host (signal 0 checks without signalling). EPERM
 * means it exists but belongs to another user: alive.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
