// What a resident signs: the procedure id and the form, so a signature for one procedure cannot be
// replayed as another. CMS: the canonical JSON of { procedureId, form } as attached content. XML (as
// e-Tax files): <Application procedure="…"><Form>canonical JSON</Form></Application>, enveloped.
// The gateway compares what was signed with what was submitted canonically, so key order and
// whitespace in the signed bytes do not matter, but every value does.

import { canonicalJson } from '../audit/canonical-json.ts';
import { parseXml } from '../core/xml/dom.ts';

export const APPLICATION_XML_NS = 'urn:open-jpki:application:1';

/** The bytes to sign for a CMS-signed application. */
export function applicationContent(procedureId: string, form: unknown): Buffer {
  return Buffer.from(canonicalJson({ procedureId, form }), 'utf8');
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The XML document to sign (enveloped XAdES) for an XML-signed application. */
export function applicationXml(procedureId: string, form: unknown): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Application xmlns="${APPLICATION_XML_NS}" procedure="${escapeXml(procedureId).replace(/"/g, '&quot;')}"><Form>${escapeXml(canonicalJson(form))}</Form></Application>`;
}

/**
 * The { procedureId, form } a signature covers, from the signed content (CMS) or the signed XML;
 * undefined when it is not an application document.
 */
export function signedApplication(
  format: 'cms' | 'xml',
  signed: Buffer,
): { procedureId: string; form: unknown } | undefined {
  try {
    if (format === 'cms') {
      const v = JSON.parse(signed.toString('utf8')) as { procedureId?: unknown; form?: unknown };
      if (typeof v !== 'object' || v === null || typeof v.procedureId !== 'string' || !('form' in v))
        return undefined;
      return { procedureId: v.procedureId, form: v.form };
    }
    // The hardened parser of the XML signature code: no DTD, bounded size and depth.
    const root = parseXml(signed.toString('utf8')).documentElement;
    if (root?.localName !== 'Application' || root.namespaceURI !== APPLICATION_XML_NS) return undefined;
    const forms = root.getElementsByTagNameNS(APPLICATION_XML_NS, 'Form');
    if (forms.length !== 1) return undefined;
    return {
      procedureId: root.getAttribute('procedure') ?? '',
      form: JSON.parse(forms[0]!.textContent ?? ''),
    };
  } catch {
    return undefined;
  }
}

/** Whether the signed application is exactly the submitted one (canonical JSON). */
export function sameApplication(
  signed: { procedureId: string; form: unknown } | undefined,
  procedureId: string,
  form: unknown,
): boolean {
  if (!signed) return false;
  try {
    return canonicalJson(signed) === canonicalJson({ procedureId, form });
  } catch {
    return false;
  }
}
