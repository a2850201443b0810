/**
 * Gives back the tmpfs the agent mounted on its secure directory when it stops, so K, the
 * decrypted payload and its files do not outlive the agent. As root the agent unmounts it
 * itself. An agent that drops to `run_as` can no longer unmount, so before dropping it leaves a
 * root `sh` waiting on a pipe that only the agent holds: when the agent exits — stopped, failed
 * or killed — the pipe closes and the shell unmounts (lazily if something still has a file open
 * there). The shell ignores SIGINT/SIGTERM, which a terminal or systemd sends to the whole group.
 *
 * @module
 */

/** Waits for EOF on stdin, then unmounts "$1". */
const GUARD_SCRIPT = `trap '' HUP INT TERM; cat >/dev/null; umount "$1" 2>/dev/null || umount -l "$1"`

/** Unmounts `path` now. Returns undefined on success, else umount's message. */
export function unmountSecureDir(path: string): string | undefined {
  const r = Bun.spawnSync(['umount', path], { stdout: 'ignore', stderr: 'pipe' })
  return r.exitCode === 0 ? undefined : r.stderr.toString().trim() || `umount exited ${r.exitCode}`
}

/** The root helper of {@link guardSecureMount}. */
export interface SecureMountGuard {
  /** Unmounts now (instead of at exit) and resolves with umount's message, or undefined. */
  release(): Promise<string | undefined>
}

/** Starts the root helper that unmounts `path` when the agent's process ends. Call as root. */
export function guardSecureMount(path: string): SecureMountGuard {
  const proc = Bun.spawn(['/bin/sh', '-c', GUARD_SCRIPT, 'keylime-agent-umount', path], {
    stdin: 'pipe',
    stdout: 'ignore',
    stderr: 'ignore',
  })
  proc.unref()
  return {
    async release() {
      await proc.stdin.end()
      const code = await proc.exited
      return code === 0 ? undefined : `umount exited ${code}`
    },
  }
}
