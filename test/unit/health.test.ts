/**
 * The worker's health endpoints (src/health.ts) on a real HTTP server on 127.0.0.1, with the
 * workers' state given by the test; and how the address is set (--health, MIGRATION_HEALTH_ADDRESS).
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { State } from '@temporalio/worker';
import { main } from '../../src/client';
import { ConfigError, readConfig } from '../../src/config';
import { combinedState, splitHostPort, startHealthServer, type HealthServer, type HealthState } from '../../src/health';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request, on a connection of its own. */
function get(address: string, path: string, method = 'GET'): Promise<Answer> {
  const { host, port } = splitHostPort(address)!;
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the health server', () => {
  let state: HealthState;
  let server: HealthServer;
  beforeEach(async () => {
    state = 'STARTING';
    server = await startHealthServer('127.0.0.1:0', () => state);
  });
  afterEach(() => server.close());

  it('listens on the address asked for, on a port of its own', () => {
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(server.address).not.toBe('127.0.0.1:0');
  });

  it('answers /healthz with 200 whatever the workers do', async () => {
    for (const s of ['STARTING', 'INITIALIZED', 'RUNNING', 'DRAINING', 'STOPPED', 'FAILED'] as const) {
      state = s;
      const answer = await get(server.address, '/healthz');
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe('application/json');
      expect(JSON.parse(answer.body)).toEqual({ status: 'alive', state: s });
    }
  });

  it('answers /readyz with 200 while the workers run, 503 while they start, drain or have stopped', async () => {
    state = 'RUNNING';
    const ready = await get(server.address, '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', state: 'RUNNING' });

    for (const s of ['STARTING', 'INITIALIZED', 'STOPPING', 'DRAINING', 'DRAINED', 'STOPPED', 'FAILED'] as const) {
      state = s;
      const answer = await get(server.address, '/readyz');
      expect(answer.status).toBe(503);
      expect(JSON.parse(answer.body)).toEqual({ status: 'not ready', state: s });
    }
  });

  it('asks for the state at each request', async () => {
    state = 'RUNNING';
    expect((await get(server.address, '/readyz')).status).toBe(200);
    state = 'DRAINING';
    expect((await get(server.address, '/readyz')).status).toBe(503);
    state = 'RUNNING';
    expect((await get(server.address, '/readyz?verbose=1')).status).toBe(200);
  });

  it('answers 404 for any other path', async () => {
    state = 'RUNNING';
    for (const path of ['/', '/metrics', '/readyz/', '/readyz/x', '/health', '/healthz.json']) {
      const answer = await get(server.address, path);
      expect(answer.status).toBe(404);
      expect(JSON.parse(answer.body)).toMatchObject({ status: 'not found', paths: ['/healthz', '/readyz'] });
    }
  });

  it('answers HEAD without a body, and refuses other methods', async () => {
    state = 'RUNNING';
    const head = await get(server.address, '/readyz', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const post = await get(server.address, '/readyz', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });

  it('is not ready, but alive, when the state cannot be read', async () => {
    await server.close();
    server = await startHealthServer('127.0.0.1:0', () => {
      throw new Error('no workers');
    });
    expect((await get(server.address, '/healthz')).status).toBe(200);
    const answer = await get(server.address, '/readyz');
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toEqual({ status: 'not ready', state: 'UNKNOWN' });
  });

  it('stops answering once closed', async () => {
    const { address } = server;
    await server.close();
    await expect(get(address, '/healthz')).rejects.toThrow(/ECONNREFUSED/);
    server = await startHealthServer('127.0.0.1:0', () => state);
  });
});

describe('startHealthServer', () => {
  it('fails with the address when it cannot listen there', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      await expect(startHealthServer(`127.0.0.1:${port}`, () => 'RUNNING')).rejects.toThrow(
        `health: cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('refuses an address that is not host:port', async () => {
    await expect(startHealthServer('8081', () => 'RUNNING')).rejects.toThrow('"8081" is not host:port');
  });
});

describe('splitHostPort', () => {
  it('splits host:port and [v6]:port', () => {
    expect(splitHostPort('0.0.0.0:8081')).toEqual({ host: '0.0.0.0', port: 8081 });
    expect(splitHostPort('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(splitHostPort('[::]:8081')).toEqual({ host: '::', port: 8081 });
    for (const bad of ['8081', ':8081', '0.0.0.0:', '0.0.0.0:70000', 'http://x:1', '[::]8081'])
      expect(splitHostPort(bad)).toBeUndefined();
  });
});

describe('combinedState', () => {
  it('is RUNNING only when every worker runs', () => {
    expect(combinedState(['RUNNING'])).toBe('RUNNING');
    expect(combinedState(['RUNNING', 'RUNNING'])).toBe('RUNNING');
    expect(combinedState(['RUNNING', 'INITIALIZED'])).toBe('INITIALIZED');
    expect(combinedState(['DRAINING', 'RUNNING'])).toBe('DRAINING');
    expect(combinedState(['STOPPED', 'STOPPED'])).toBe('STOPPED');
  });

  it('says FAILED when one failed, and STARTING before there are workers', () => {
    expect(combinedState(['RUNNING', 'FAILED'] as State[])).toBe('FAILED');
    expect(combinedState(['DRAINING', 'FAILED'])).toBe('FAILED');
    expect(combinedState([])).toBe('STARTING');
  });
});

describe('the health address setting', () => {
  it('is read from MIGRATION_HEALTH_ADDRESS, and refused when it is not host:port', () => {
    expect(readConfig({ MIGRATION_HEALTH_ADDRESS: '0.0.0.0:8081' }).healthAddress).toBe('0.0.0.0:8081');
    expect(readConfig({ MIGRATION_HEALTH_ADDRESS: '[::]:8081' }).healthAddress).toBe('[::]:8081');
    expect(readConfig({ MIGRATION_HEALTH_ADDRESS: ' ' }).healthAddress).toBeUndefined();
    expect(readConfig({}).healthAddress).toBeUndefined();
    expect(() => readConfig({ MIGRATION_HEALTH_ADDRESS: '8081' })).toThrow(ConfigError);
    expect(() => readConfig({ MIGRATION_HEALTH_ADDRESS: '8081' })).toThrow(
      'MIGRATION_HEALTH_ADDRESS="8081": expected host:port, e.g. 0.0.0.0:8081',
    );
  });

  it('worker --health refuses an address that is not host:port, exit 2, before connecting', async () => {
    let err = '';
    let connected = false;
    const code = await main(['worker', '--health', 'nowhere'], {
      out: () => {},
      err: (s) => (err += s),
      isTTY: false,
      client: () => {
        connected = true;
        return Promise.reject(new Error('no Temporal in unit tests'));
      },
    });
    expect(code).toBe(2);
    expect(err).toContain("--health 'nowhere': expected host:port");
    expect(connected).toBe(false);
  });

  it('worker --help lists --health', async () => {
    let out = '';
    const code = await main(['worker', '--help'], {
      out: (s) => (out += s),
      err: () => {},
      isTTY: false,
      client: () => Promise.reject(new Error('no Temporal in unit tests')),
    });
    expect(code).toBe(0);
    expect(out).toMatch(/--health <address>.*\/healthz and \/readyz/s);
    expect(out).toContain('MIGRATION_HEALTH_ADDRESS');
  });
});
