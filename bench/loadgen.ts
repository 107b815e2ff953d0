// A minimal closed-loop HTTP load generator on raw sockets, for servers autocannon cannot drive.
//
// `openssl ocsp` (3.0) answers HTTP/1.0 and closes the connection after every response; autocannon
// writes its next request on the closing connection and then matches responses to the wrong start
// times (it reported ~1 s median latency and thousands of errors against it), and its
// `reconnectRate` option does not count the response it reconnects after. This generator runs
// `connections` loops; in 'close' mode each request opens a connection, sends the request, reads the
// whole response (Content-Length) and lets the connection close; in 'keep-alive' mode the
// connection is reused. Latency is measured per request with a microsecond clock (in 'close' mode
// it includes the TCP connect, which is part of what a client pays).

import { connect, type Socket } from 'node:net';

export interface RawLoadOptions {
  port: number;
  /** Complete HTTP requests (request line, headers, body), used in turn. */
  requests: readonly Buffer[];
  connections: number;
  seconds: number;
  mode: 'close' | 'keep-alive';
  /** A request without a complete response after this long counts as an error (default 5000 ms). */
  timeoutMs?: number;
}

export interface RawLoadResult {
  rps: number;
  /** Milliseconds. */
  p50: number;
  p99: number;
  ok: number;
  non200: number;
  errors: number;
}

/** Builds an HTTP/1.1 request; `close` adds Connection: close. */
export function httpRequest(
  method: 'GET' | 'POST',
  path: string,
  opts: { body?: Buffer; contentType?: string; close: boolean; host: string },
): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${opts.host}`];
  if (opts.close) lines.push('Connection: close');
  if (opts.body) {
    lines.push(`Content-Type: ${opts.contentType ?? 'application/octet-stream'}`);
    lines.push(`Content-Length: ${opts.body.length}`);
  }
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return opts.body ? Buffer.concat([head, opts.body]) : head;
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** Parses what has arrived; returns the status and total length once the whole response is there. */
function complete(buf: Buffer): { status: number; length: number } | undefined {
  const end = buf.indexOf(CRLF2);
  if (end < 0) return undefined;
  const head = buf.subarray(0, end).toString('latin1');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (!cl) return undefined; // both servers send Content-Length
  const length = end + 4 + Number(cl[1]);
  return buf.length >= length ? { status, length } : undefined;
}

export async function rawLoad(o: RawLoadOptions): Promise<RawLoadResult> {
  const latencies: number[] = [];
  let ok = 0;
  let non200 = 0;
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + o.seconds * 1000;

  const oneConnection = (): Promise<void> =>
    new Promise((resolve) => {
      let socket: Socket | undefined;
      let buf: Buffer = Buffer.alloc(0);
      let t0 = 0;
      let settled = false;
      const finish = () => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        socket?.destroy();
        resolve();
      };
      let timer: NodeJS.Timeout | undefined;
      const onTimeout = () => {
        errors++;
        const s = socket;
        socket = undefined;
        s?.removeAllListeners('close');
        s?.destroy();
        send();
      };
      const send = () => {
        if (timer) clearTimeout(timer);
        if (performance.now() >= deadline) return finish();
        const req = o.requests[next++ % o.requests.length]!;
        buf = Buffer.alloc(0);
        t0 = performance.now();
        timer = setTimeout(onTimeout, o.timeoutMs ?? 5000);
        if (o.mode === 'close' || !socket) {
          socket = connect({ host: '127.0.0.1', port: o.port });
          socket.setNoDelay(true);
          const s = socket;
          s.on('data', (d: Buffer) => {
            buf = buf.length ? Buffer.concat([buf, d]) : d;
            const r = complete(buf);
            if (!r) return;
            latencies.push(performance.now() - t0);
            if (r.status === 200) ok++;
            else non200++;
            if (o.mode === 'close') {
              s.removeAllListeners('close');
              s.on('error', () => {});
              s.end();
              send();
            } else send();
          });
          s.on('error', () => {
            errors++;
          });
          s.on('close', () => {
            // Closed before a complete response: count it and go on with a new connection.
            if (settled) return;
            errors++;
            socket = undefined;
            send();
          });
          s.write(req);
        } else socket.write(req);
      };
      send();
    });

  await Promise.all(Array.from({ length: o.connections }, oneConnection));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! : 0;
  return {
    rps: ok / elapsed,
    p50: Math.round(pct(0.5) * 1000) / 1000,
    p99: Math.round(pct(0.99) * 1000) / 1000,
    ok,
    non200,
    errors,
  };
}

/** Sends one request on a new connection and returns the status and body of the response. */
export function rawOnce(
  port: number,
  request: Buffer,
  timeoutMs = 10_000,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('no response'));
    }, timeoutMs);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = complete(buf);
      if (!r) return;
      clearTimeout(timer);
      s.end();
      resolve({ status: r.status, body: buf.subarray(buf.indexOf(CRLF2) + 4, r.length) });
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.write(request);
  });
}
