// The hardened XML front end: every document the signature code touches is parsed here.
//
// - No DTD at all: a DOCTYPE (internal subset or external) is refused before the parser runs, and
//   any document-type, entity or notation node that still appears is refused after it. So there is
//   no external entity (XXE), no entity expansion (billion laughs), no external DTD fetch. The
//   parser itself (@xmldom/xmldom) never performs I/O.
// - Size and nesting depth are capped; canonicalisation recurses once per level.
// - Anything the parser would only warn about is an error; unbound prefixes, duplicate expanded
//   attribute names and characters outside the XML 1.0 Char production are refused (the parser is
//   lax about them, and libxml2 — xmlsec1 — is not, so accepting them would let the two disagree).
// - XML 1.0 line-end normalisation (xmldom applies XML 1.1's, which also folds U+0085 and U+2028).
// - Processing instructions are refused (apart from the XML declaration): the canonicaliser in use
//   does not render them, so a document containing one could not be hashed faithfully.
import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import { encodeSpecialCharactersInText } from 'xml-crypto/lib/utils.js';

/** The sub-indications (ETSI EN 319 102-1) that XML signature processing reports. */
export type XmlSubIndication =
  | 'FORMAT_FAILURE'
  | 'HASH_FAILURE'
  | 'SIG_CRYPTO_FAILURE'
  | 'NO_SIGNING_CERTIFICATE_FOUND'
  | 'SIGNED_DATA_NOT_FOUND'
  | 'CRYPTO_CONSTRAINTS_FAILURE';

/** A typed failure of XML signature processing. `verifyXml` turns these into results. */
export class XmlSignatureError extends Error {
  override readonly name = 'XmlSignatureError';
  constructor(
    readonly subIndication: XmlSubIndication,
    message: string,
  ) {
    super(message);
  }
}

export const formatError = (message: string): XmlSignatureError =>
  new XmlSignatureError('FORMAT_FAILURE', message);

export interface ParseLimits {
  /** Largest accepted document, in UTF-8 bytes. Default 10 MiB. */
  maxBytes?: number;
  /** Deepest accepted element nesting. Default 256. */
  maxDepth?: number;
}

export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_MAX_DEPTH = 256;

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;
const CDATA_SECTION_NODE = 4;
const PROCESSING_INSTRUCTION_NODE = 7;
const COMMENT_NODE = 8;

/** Code units that are not XML 1.0 Chars: C0 controls other than TAB/LF/CR, U+FFFE/U+FFFF, lone surrogates. */
const NOT_XML_CHAR =
  /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const isXmlSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** Whether a DOCTYPE declaration starts the document, after the XML declaration, comments, PIs and spaces. */
function prologHasDoctype(xml: string): boolean {
  let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    while (i < xml.length && isXmlSpace(xml.charCodeAt(i))) i++;
    if (xml.startsWith('<!--', i)) {
      const end = xml.indexOf('-->', i + 4);
      if (end < 0) return false;
      i = end + 3;
    } else if (xml.startsWith('<?', i)) {
      const end = xml.indexOf('?>', i + 2);
      if (end < 0) return false;
      i = end + 2;
    } else {
      return xml.slice(i, i + 9).toUpperCase() === '<!DOCTYPE';
    }
  }
}

/** Decodes a byte input as UTF-8, strictly. */
export function decodeUtf8(input: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(input);
  } catch {
    throw formatError('the document is not valid UTF-8');
  }
}

/**
 * Parses `xml` with every protection above. Throws XmlSignatureError (FORMAT_FAILURE) on anything
 * refused, never anything else.
 */
export function parseXml(xml: string, limits: ParseLimits = {}): Document {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (typeof xml !== 'string') throw formatError('the document must be a string');
  // A UTF-16 code unit never takes fewer UTF-8 bytes than one, so the cheap test comes first.
  if (xml.length > maxBytes || Buffer.byteLength(xml, 'utf8') > maxBytes)
    throw formatError(`the document is larger than ${maxBytes} bytes`);
  if (prologHasDoctype(xml))
    throw formatError('DOCTYPE is not allowed: documents with a DTD (and so entities) are refused');
  if (NOT_XML_CHAR.test(xml))
    throw formatError('the document contains characters that XML 1.0 does not allow');

  let firstError: string | undefined;
  const fail = (msg: unknown): never => {
    firstError ??= String(msg)
      .replace(/^\[xmldom \w+\]\s*/, '')
      .replace(/\s*@#\[line:[^\]]*\]\s*$/, '');
    throw new Error(firstError);
  };
  const parser = new DOMParser({
    errorHandler: { warning: fail, error: fail, fatalError: fail },
    // XML 1.0 §2.11 (xmldom's default is XML 1.1's, which also folds U+0085 and U+2028).
    normalizeLineEndings: (s: string) => s.replace(/\r\n?/g, '\n'),
  } as ConstructorParameters<typeof DOMParser>[0]);
  let doc: Document;
  try {
    doc = parser.parseFromString(xml, 'application/xml');
  } catch (e) {
    throw formatError(`not well-formed XML: ${firstError ?? (e as Error).message}`);
  }
  if (firstError !== undefined) throw formatError(`not well-formed XML: ${firstError}`);
  if (!doc?.documentElement) throw formatError('not well-formed XML: no document element');
  checkTree(doc, maxDepth);
  return doc;
}

/** The post-parse checks: node types, depth, namespaces, characters from character references. */
function checkTree(doc: Document, maxDepth: number): void {
  const top = Array.from(doc.childNodes);
  for (const [i, n] of top.entries()) {
    if (n.nodeType === ELEMENT_NODE || n.nodeType === COMMENT_NODE) continue;
    if (n.nodeType === TEXT_NODE && /^[ \t\n\r]*$/.test((n as Text).data)) continue;
    if (
      n.nodeType === PROCESSING_INSTRUCTION_NODE &&
      (n as ProcessingInstruction).target === 'xml' &&
      i === 0
    ) {
      const decl = (n as ProcessingInstruction).data;
      if (!/^version\s*=\s*(['"])1\.0\1/.test(decl)) throw formatError('only XML 1.0 documents are accepted');
      continue;
    }
    throw refusedNode(n);
  }
  const stack: [Node, number][] = [[doc.documentElement, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    switch (node.nodeType) {
      case ELEMENT_NODE: {
        if (depth > maxDepth) throw formatError(`elements are nested deeper than ${maxDepth}`);
        checkElement(node as Element);
        const children = node.childNodes;
        for (let i = children.length - 1; i >= 0; i--) stack.push([children[i]!, depth + 1]);
        break;
      }
      case TEXT_NODE:
      case CDATA_SECTION_NODE:
      case COMMENT_NODE:
        if (NOT_XML_CHAR.test((node as CharacterData).data))
          throw formatError('the document contains characters that XML 1.0 does not allow');
        break;
      default:
        throw refusedNode(node);
    }
  }
}

function refusedNode(n: Node): XmlSignatureError {
  switch (n.nodeType) {
    case 10:
      return formatError('DOCTYPE is not allowed: documents with a DTD (and so entities) are refused');
    case 5:
    case 6:
    case 12:
      return formatError('entities and notations are not allowed');
    case PROCESSING_INSTRUCTION_NODE:
      return formatError(
        `processing instructions are not supported (<?${(n as ProcessingInstruction).target} ...?>)`,
      );
    case TEXT_NODE:
    case CDATA_SECTION_NODE:
      return formatError('text outside the document element');
    default:
      return formatError(`unexpected node type ${n.nodeType}`);
  }
}

function checkElement(el: Element): void {
  if (el.prefix && !el.namespaceURI) throw formatError(`unbound namespace prefix in <${el.tagName}>`);
  const seen = new Set<string>();
  for (let i = 0; i < el.attributes.length; i++) {
    const a = el.attributes[i]!;
    if (a.name === 'xmlns' || a.prefix === 'xmlns') {
      if (a.prefix === 'xmlns' && a.value === '')
        throw formatError(`a prefixed namespace cannot be undeclared (${a.name} in <${el.tagName}>)`);
    } else if (a.prefix && !a.namespaceURI) {
      throw formatError(`unbound namespace prefix in attribute ${a.name} of <${el.tagName}>`);
    }
    const key = `${a.namespaceURI ?? ''}|${a.localName ?? a.name}`;
    if (seen.has(key)) throw formatError(`duplicate attribute ${a.name} in <${el.tagName}>`);
    seen.add(key);
    if (NOT_XML_CHAR.test(a.value))
      throw formatError('the document contains characters that XML 1.0 does not allow');
  }
}

/**
 * Serialises a document parsed by `parseXml`. Text is escaped as C14N escapes it (so a carriage
 * return that came from `&#13;` stays a character reference and survives the next parse).
 */
export function serializeXml(node: Node): string {
  return new XMLSerializer().serializeToString(node, false, (n: Node) =>
    n.nodeType === TEXT_NODE ? (encodeSpecialCharactersInText((n as Text).data) as unknown as Node) : n,
  );
}

/** The element children of `el`, refusing text other than whitespace (comments are ignored). */
export function elementChildren(el: Element): Element[] {
  const out: Element[] = [];
  for (let i = 0; i < el.childNodes.length; i++) {
    const n = el.childNodes[i]!;
    if (n.nodeType === ELEMENT_NODE) out.push(n as Element);
    else if (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) {
      if (!/^[ \t\n\r]*$/.test((n as CharacterData).data))
        throw formatError(`unexpected text in <${el.tagName}>`);
    }
  }
  return out;
}

/** The text content of a leaf element, refusing element children. */
export function leafText(el: Element): string {
  let s = '';
  for (let i = 0; i < el.childNodes.length; i++) {
    const n = el.childNodes[i]!;
    if (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) s += (n as CharacterData).data;
    else if (n.nodeType === ELEMENT_NODE) throw formatError(`unexpected element inside <${el.tagName}>`);
  }
  return s;
}

/** Strict base64 (xs:base64Binary: whitespace allowed, nothing else). */
export function decodeBase64(text: string, what: string): Buffer {
  const compact = text.replace(/[ \t\n\r]+/g, '');
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact))
    throw formatError(`${what} is not valid base64`);
  return Buffer.from(compact, 'base64');
}

export const isElement = (n: Node | null | undefined): n is Element => n?.nodeType === ELEMENT_NODE;

/** Whether `el` is `{ns}local`. */
export const is = (el: Element, ns: string, local: string): boolean =>
  el.namespaceURI === ns && el.localName === local;
