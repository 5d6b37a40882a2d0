import { describe, expect, it } from 'vitest';
import { TRANSIENT_GIT_FAILURE } from '../../common/repositories.js';

describe('a git failure while fetching or delivering a repository', () => {
  it('when the network or the server is down for now, then it is transient (retried); when the request is wrong, then it is not', () => {
    const transient = [
      "fatal: unable to access 'https://git.example.com/a.git/': Could not resolve host: git.example.com",
      "fatal: unable to access 'https://git.example.com/a.git/': Failed to connect to git.example.com port 443",
      'fatal: unable to access: The requested URL returned error: 503',
      'error: RPC failed; curl 56 Recv failure: Connection reset by peer',
      'fatal: early EOF',
      'ssh: connect to host git.example.com port 22: Connection timed out',
    ];
    const permanent = [
      'fatal: Authentication failed for https://git.example.com/a.git/',
      'fatal: unable to access: The requested URL returned error: 401',
      'remote: Repository not found.',
      "fatal: couldn't find remote ref refs/heads/nope",
      'Permission denied (publickey).',
    ];
    for (const said of transient) expect(TRANSIENT_GIT_FAILURE.test(said), said).toBe(true);
    for (const said of permanent) expect(TRANSIENT_GIT_FAILURE.test(said), said).toBe(false);
  });
});
