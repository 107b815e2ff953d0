/** CRLReason (RFC 5280 5.3.1). 7 is not used; removeFromCRL only appears in delta CRLs. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type RevocationReason = keyof typeof REVOCATION_REASONS;

export class ReasonError extends Error {
  override name = 'ReasonError';
}

// certificateHold is refused: JPKI has no suspension, a lost card's certificates are revoked.
const ACCEPTED = Object.keys(REVOCATION_REASONS).filter((r) => r !== 'certificateHold') as RevocationReason[];

export function reasonCode(reason: string): number {
  if (!(ACCEPTED as string[]).includes(reason))
    throw new ReasonError(`unknown revocation reason "${reason}"; use one of: ${ACCEPTED.join(', ')}`);
  return REVOCATION_REASONS[reason as RevocationReason];
}

export function reasonName(code: number): RevocationReason {
  const hit = Object.entries(REVOCATION_REASONS).find(([, c]) => c === code);
  return (hit?.[0] ?? 'unspecified') as RevocationReason;
}

export const revocationReasons = (): readonly RevocationReason[] => ACCEPTED;
