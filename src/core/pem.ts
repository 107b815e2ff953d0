export class PemError extends Error {
  override name = 'PemError';
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/**
 * The DER of the first PEM block with one of the given labels. Refuses text that has no such block
 * or whose base64 is damaged (Node's decoder silently skips bad characters, so check strictly).
 */
export function decodePem(text: string, labels: readonly string[]): Buffer {
  for (const m of text.matchAll(BLOCK)) {
    if (!labels.includes(m[1]!)) continue;
    const body = m[2]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0)
      throw new PemError(`the ${m[1]} PEM block has damaged base64`);
    const der = Buffer.from(body, 'base64');
    if (der.length === 0) throw new PemError(`the ${m[1]} PEM block is empty`);
    return der;
  }
  throw new PemError(`no ${labels[0]} PEM block found`);
}

/** All blocks with the label, e.g. a chain file of certificates. */
export function decodePemAll(text: string, label: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of text.matchAll(BLOCK)) if (m[1] === label) out.push(decodePem(m[0], [label]));
  return out;
}

export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/** Accepts PEM (with the label) or raw DER bytes. */
export function derFromPemOrDer(input: Uint8Array, label: string): Buffer {
  const buf = Buffer.from(input);
  const head = buf.subarray(0, 64).toString('latin1');
  if (head.includes('-----BEGIN')) return decodePem(buf.toString('utf8'), [label]);
  return buf;
}
