/**
 * Stopping when the parent process goes away. `npx blip2 serve` runs as npm exec -> `sh -c blip2 ...` -> node,
 * and a SIGTERM to npx reaches neither the shell's child nor us: measured with npm 11.19.1, `kill <npx pid>`
 * leaves the server running, reparented to init. A process cannot be told that its parent died (prctl's
 * PDEATHSIG is not reachable from Node), but it can see it: its parent id changes (Linux, macOS) or the old
 * parent no longer exists (Windows, where the id stays).
 *
 * Watching is on when npm started the CLI (npx, npm exec, npm run: npm sets `npm_command`), where the launcher
 * is known not to forward signals, and off otherwise, so that `nohup blip2 serve &` and the like still outlive
 * their shell. `BLIP2_EXIT_WITH_PARENT=1` turns it on anywhere, `=0` off.
 */

type Env = Readonly<Record<string, string | undefined>>;

export function exitWithParentWanted(env: Env): boolean {
  const setting = env.BLIP2_EXIT_WITH_PARENT?.trim();
  if (setting === '1' || setting === 'true') return true;
  if (setting === '0' || setting === 'false') return false;
  return Boolean(env.npm_command);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Calls `onGone` once when the parent that started this process has exited, checking every `intervalMs`.
 * Returns a function that stops watching. The timer does not keep the process alive.
 */
export function watchParent(onGone: (parentPid: number) => void, intervalMs = 1000): () => void {
  const parent = process.ppid;
  // Started by init (or a parent already gone): there is nothing to watch.
  if (parent <= 1) return () => {};
  const timer = setInterval(() => {
    if (process.ppid === parent && alive(parent)) return;
    clearInterval(timer);
    onGone(parent);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
