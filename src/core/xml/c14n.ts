// Canonicalisation (C14N 1.0 and Exclusive C14N 1.0, both without comments) and the enveloped-
// signature transform, all from xml-crypto; this module only chooses the calls and supplies the
// context a document subset needs.
import { C14nCanonicalization, ExclusiveCanonicalization } from 'xml-crypto';
import { EnvelopedSignature } from 'xml-crypto/lib/enveloped-signature.js';
import { findAncestorNsForElement } from 'xml-crypto/lib/utils.js';
import { C14N, type Canonicalization, NS } from './constants.ts';
import { formatError } from './dom.ts';

/** The Canonicalization named by an Algorithm URI, or undefined if it is not one this code accepts. */
export function canonicalizationOf(uri: string | null): Canonicalization | undefined {
  if (uri === C14N.exclusive) return 'exclusive';
  if (uri === C14N.inclusive) return 'inclusive';
  return undefined;
}

/**
 * The canonical form of `el` as a document subset (the element, its attributes and descendants,
 * comments removed), in its place in the document: inclusive C14N brings the namespace declarations
 * in scope from the ancestors, exclusive C14N only those the subset visibly uses.
 */
export function canonicalizeElement(el: Element, alg: Canonicalization): string {
  if (alg === 'exclusive') {
    // processInner rather than process: process would look for an InclusiveNamespaces PrefixList
    // among the element's own children, which is not where one is declared.
    return new ExclusiveCanonicalization().processInner(el, [], '', {}, []);
  }
  // C14N 1.0 would also copy the xml:* attributes of ancestors onto the subset's apex; the library
  // does not, so a subset with such ancestors cannot be canonicalised faithfully: refuse it.
  for (let p = el.parentNode; p && p.nodeType === 1; p = p.parentNode) {
    const attrs = (p as Element).attributes;
    for (let i = 0; i < attrs.length; i++)
      if (attrs[i]!.namespaceURI === NS.xml)
        throw formatError(
          `inclusive canonicalisation of <${el.tagName}> under an element carrying ${attrs[i]!.name} is not supported; use exclusive canonicalisation`,
        );
  }
  return new C14nCanonicalization().process(el, { ancestorNamespaces: findAncestorNsForElement(el) });
}

/**
 * The octets of a Reference URI="" with the enveloped-signature transform and `alg`: the whole
 * document (its element; comments, and the XML declaration, are not part of it) without `signature`.
 * The transform detaches the signature from the (private) DOM for the time of the canonicalisation
 * and it is put back in its place afterwards: cheaper than copying a large document.
 */
export function canonicalizeDocumentWithoutSignature(
  doc: Document,
  signature: Element,
  alg: Canonicalization,
): string {
  const root = doc.documentElement;
  const parent = signature.parentNode;
  if (!parent || signature === root) throw formatError('the signature is not inside the document element');
  const next = signature.nextSibling;
  new EnvelopedSignature().process(root, { signatureNode: signature });
  if (signature.parentNode) throw formatError('the signature is not inside the document element');
  try {
    return alg === 'exclusive'
      ? new ExclusiveCanonicalization().processInner(root, [], '', {}, [])
      : new C14nCanonicalization().process(root, {});
  } finally {
    parent.insertBefore(signature, next);
  }
}
