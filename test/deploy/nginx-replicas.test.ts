/**
 * deploy/nginx/blip2.conf in front of two `blip2 serve` replicas (tiny checkpoint), all on loopback: every
 * request of a load is answered while one replica stops in the middle, gracefully (a rolling restart) or by
 * SIGKILL (a crash: the requests it was running are passed on to the other replica).
 */
import { describe, expect, it } from 'vitest';
import { findNginx, replicaCheck } from '../../scripts/nginx-replicas.js';
import { TINY } from '../paths.js';

describe('blip2 serve replicas behind nginx', () => {
  it('has nginx (scripts/install-system.sh installs Debian\'s package)', () => {
    expect(findNginx()).not.toBeNull();
  });

  it('answers every request while a replica stops gracefully mid-load', async () => {
    const r = await replicaCheck({ model: TINY, requests: 24, clients: 6, stop: 'term' });
    expect(r.failures).toEqual([]);
    expect(r.answered).toBe(24);
    expect(r.stopped.exitCode).toBe(0);
    expect(r.stoppedAfter).toBeGreaterThan(0);
    // Both replicas answered.
    expect(Object.keys(r.servedBy)).toHaveLength(2);
  });

  it('answers every request while a replica crashes mid-load, passing its requests on', async () => {
    const r = await replicaCheck({ model: TINY, requests: 24, clients: 6, stop: 'kill' });
    expect(r.failures).toEqual([]);
    expect(r.answered).toBe(24);
    expect(r.stopped.exitCode).toBeNull(); // killed
    expect(r.retried).toBeGreaterThan(0);
  });
});
